"""The event loop a worker runs on: asyncio's own (the default) or uvloop (`jobfleet[uvloop]`).

One place for every entry point that runs a worker (`jobfleet worker`, and so each child of
`--processes N`, which is a `jobfleet worker` reading the same settings): `run` builds an
`asyncio.Runner` with the loop factory of `WorkerSettings.event_loop`. uvloop is an opt-in:
bench/RESULTS.md measured it 17-23% faster with I/O-bound handlers in one window ("Issue 15's
tables in one run") and heavier at concurrency 10 in another, so nobody's loop changes unasked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, get_args

from .errors import ConfigError
from .settings import EventLoop

EVENT_LOOPS: tuple[str, ...] = get_args(EventLoop)

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(name: str) -> LoopFactory | None:
    """The `asyncio.Runner` loop factory of `name` (None: asyncio's default loop).

    Raises ConfigError, before any loop exists, for an unknown name or for uvloop when the
    extra is not installed.
    """
    if name == "asyncio":
        return None
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise ConfigError(
                "event_loop 'uvloop' needs the uvloop package: pip install 'jobfleet[uvloop]'"
            ) from None
        factory: LoopFactory = uvloop.new_event_loop
        return factory
    raise ConfigError(f"event_loop must be one of {', '.join(EVENT_LOOPS)}, got {name!r}")


def run(main: Callable[[], Coroutine[Any, Any, T]], event_loop: str) -> T:
    """Run `main()` to its end on a fresh loop of kind `event_loop` (the coroutine is made only
    once the loop is known to exist, so a ConfigError leaves nothing half-started)."""
    factory = loop_factory(event_loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


__all__ = ["EVENT_LOOPS", "EventLoop", "loop_factory", "run"]
