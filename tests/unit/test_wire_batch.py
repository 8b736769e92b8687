"""What a retried exchange of jobfleet.wire sends again: only the commands without a reply."""

import pytest
from jobfleet.wire import _Batch
from redis.exceptions import BusyLoadingError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError


def test_a_retry_sends_again_only_the_commands_without_a_reply() -> None:
    # Pure logic of wire._Batch: a reply proves the command ran; LOADING, that it did not; a
    # lost connection, that it may have.
    lost = RedisConnectionError("connection to Redis lost")
    batch = _Batch([b"a", b"b", b"c", b"d"])
    assert batch.pending() == [b"a", b"b", b"c", b"d"]
    with pytest.raises(BusyLoadingError):
        batch.settle([1, BusyLoadingError("LOADING"), 3, lost])
    assert batch.pending() == [b"b", b"d"]
    with pytest.raises(RedisConnectionError):
        batch.settle([2, lost])
    assert batch.pending() == [b"d"]
    assert batch.settle([4]) == [1, 2, 3, 4]


def test_error_replies_other_than_loading_are_replies() -> None:
    # NOSCRIPT and a script's own error are its reply: the caller raises or reloads; no retry.
    noscript, failed = NoScriptError("NOSCRIPT"), ResponseError("ERR boom")
    assert _Batch([b"a", b"b", b"c"]).settle([noscript, failed, 3]) == [noscript, failed, 3]
