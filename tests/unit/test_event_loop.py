"""The worker's event loop (jobfleet.event_loop): the setting, its sources, and the error when
uvloop is asked for but not installed."""

from __future__ import annotations

import asyncio
import sys

import pytest
from jobfleet import ConfigError, cli, event_loop, load_settings


@pytest.fixture
def no_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """`import uvloop` fails as it does where the extra is not installed."""
    monkeypatch.setitem(sys.modules, "uvloop", None)


def test_the_default_is_asyncio_and_uvloop_comes_from_flag_file_or_environment():
    assert load_settings(env={}).event_loop == "asyncio"
    assert load_settings(env={"JOBFLEET_EVENT_LOOP": "uvloop"}).event_loop == "uvloop"
    assert load_settings(env={}, overrides={"event_loop": "uvloop"}).event_loop == "uvloop"
    with pytest.raises(ConfigError, match=r"event_loop: Input should be 'asyncio' or 'uvloop'"):
        load_settings(env={"JOBFLEET_EVENT_LOOP": "tokio"})
    args = cli.build_parser().parse_args(["worker", "--event-loop", "uvloop"])
    assert args.event_loop == "uvloop"
    with pytest.raises(cli.UsageError, match="--event-loop: invalid choice: 'trio'"):
        cli.build_parser().parse_args(["worker", "--event-loop", "trio"])


def test_asyncio_needs_no_factory_and_an_unknown_name_is_refused():
    assert event_loop.loop_factory("asyncio") is None
    with pytest.raises(ConfigError, match="event_loop must be one of asyncio, uvloop, got 'x'"):
        event_loop.loop_factory("x")


def test_uvloop_without_the_extra_is_a_config_error_naming_it(no_uvloop: None) -> None:
    with pytest.raises(ConfigError, match=r"needs the uvloop package: .*jobfleet\[uvloop\]"):
        event_loop.loop_factory("uvloop")

    made: list[str] = []

    async def main() -> None:
        made.append("ran")

    with pytest.raises(ConfigError):
        event_loop.run(lambda: main(), "uvloop")
    assert made == []  # the coroutine was never even made: no "never awaited" either


def test_the_worker_command_stops_before_anything_starts(
    no_uvloop: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[object] = []

    async def worker(*args: object) -> int:
        started.append(args)
        return 0

    monkeypatch.setattr(cli, "_worker", worker)
    code = cli.main(["worker", "--event-loop", "uvloop", "--handlers", "app.jobs"])
    assert code == cli.EXIT_ERROR
    assert started == []  # no loop ran, nothing connected
    err = capsys.readouterr().err
    assert err.strip() == (
        "jobfleet: event_loop 'uvloop' needs the uvloop package: pip install 'jobfleet[uvloop]'"
    )
    # the environment variable takes the same path
    monkeypatch.setenv("JOBFLEET_EVENT_LOOP", "uvloop")
    assert cli.main(["worker", "--handlers", "app.jobs"]) == cli.EXIT_ERROR
    assert started == []


def test_run_uses_the_loop_asked_for():
    pytest.importorskip("uvloop")

    async def kind() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert event_loop.run(kind, "uvloop") == "uvloop"
    assert event_loop.run(kind, "asyncio") == "asyncio.unix_events"
