"""Pre-packed script calls (jobfleet.wire) are byte for byte what redis-py would send."""

import pytest
from jobfleet.wire import ScriptHead, pack_args
from redis.asyncio.connection import Connection
from redis.exceptions import DataError


def redis_py(*args: object) -> bytes:
    return b"".join(Connection().pack_command(*args))


class Script:  # what ScriptHead reads of redis-py's AsyncScript
    sha = "a" * 40
    script = "return 1"


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("x",),
        (b"raw", "text", "ünïcode", 0, -7, 2**60, 1.5, -0.25, 1e300),
        ("x" * 5999, "y" * 6000, b"z" * 100_000, "tail"),
        ("", b"", "a\r\nb"),
    ],
)
def test_pack_args_matches_redis_py(args):
    # redis-py splits a command name on spaces: the comparison starts with a plain one.
    command = ("EVALSHA", *args)
    assert b"".join(pack_args(command)) == redis_py(*command)[len(b"*%d\r\n" % len(command)) :]


def test_large_arguments_are_not_copied():
    big = b"z" * 100_000
    assert any(part is big for part in pack_args(["head", big, "tail"]))


@pytest.mark.parametrize("bad", [True, None, object(), [1]])
def test_what_redis_py_refuses_is_refused(bad):
    with pytest.raises(DataError, match="invalid script argument"):
        pack_args(["ok", bad])


def test_a_head_and_its_arguments_are_the_whole_command():
    keys = [b"jf:{q}:ready", b"jf:{q}:delayed"]
    head = ScriptHead(Script(), keys, [b"jf:{q}:"])  # type: ignore[arg-type]
    for args in ([], [1, "two"], ["x" * 10_000]):
        sent = b"".join(head.command(args))
        assert sent == redis_py("EVALSHA", Script.sha, 2, *keys, b"jf:{q}:", *args)
