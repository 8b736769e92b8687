"""What a handler receives: the job's payload and identity, and a way to report progress."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

ProgressSink = Callable[[str, str, float | None, str, str], Awaitable[bool]]


@dataclass(slots=True)
class JobContext:
    """One attempt of one job, as its handler sees it.

    Handlers should be idempotent: at-least-once delivery means a job can run again after a
    worker dies. `id` and `attempt` help: use `id` as an idempotency key downstream.
    """

    id: str
    name: str
    queue: str
    payload: Any
    attempt: int
    max_attempts: int
    token: str = field(repr=False)
    _sink: ProgressSink = field(repr=False)
    _loop: asyncio.AbstractEventLoop = field(repr=False)

    async def aprogress(
        self, percent: float | None = None, message: str = "", stage: str = ""
    ) -> None:
        """Record progress (0-100), readable through `Client.get` while the job runs."""
        if percent is not None and not (math.isfinite(percent) and 0 <= percent <= 100):
            raise ValueError(f"progress must be between 0 and 100, not {percent}")
        await self._sink(self.id, self.token, percent, message, stage)

    def progress(self, percent: float | None = None, message: str = "", stage: str = "") -> Any:
        """Record progress. Await it in async handlers; call it plainly in sync ones."""
        coro = self.aprogress(percent, message, stage)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            return coro
        # A sync handler in the worker's thread pool: hop onto the worker's loop and wait.
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()
