"""Sync handlers in a thread pool: a thread cannot be stopped, so its job waits for it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .engine import ClaimedJob
from .registry import Handler

log = logging.getLogger("jobfleet.worker")

THREAD_RUNS_ON = (
    "; its sync handler cannot be interrupted in a thread, so the job keeps its slot and lease "
    "and fails once it returns (isolation: process kills it instead)"
)

MarkOverdue = Callable[[str, str], Awaitable[Any]]  # (job id, token): JobInfo.overdue_since
TimedOut = Callable[[Handler, list[ClaimedJob], float, str], None]  # the log line and metric


class Threads:
    """The pool of `size` threads sync handlers run in, and the jobs each thread holds."""

    def __init__(self, size: int, *, mark_overdue: MarkOverdue, timed_out: TimedOut) -> None:
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="jobfleet-job")
        self._mark_overdue = mark_overdue
        self._timed_out = timed_out
        self._running: dict[Future[Any], list[ClaimedJob]] = {}
        self.abandoning = False  # exit is giving up on threads that are still running

    async def run(
        self, handler: Handler, arg: Any, jobs: list[ClaimedJob], timeout: float | None
    ) -> Any:
        """Run a sync handler in the thread pool.

        A thread cannot be stopped, so past the timeout, or when cancelled (stop, lost
        lease), the job waits for it to return before it is failed or handed back: until
        then its slot stays taken and its lease renewed, and it never runs twice at once.
        """
        thread = self._pool.submit(handler.fn, arg)
        returned = asyncio.wrap_future(thread)
        self._running[thread] = jobs
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return await asyncio.shield(returned)
        except TimeoutError:
            if not deadline.expired() or timeout is None:
                raise  # the handler's own
            message = f"job exceeded its timeout of {timeout:g} s"
            if not thread.cancel():  # it started: it runs on
                started = time.monotonic()
                self._timed_out(handler, jobs, timeout, THREAD_RUNS_ON)
                marks = [self._mark_overdue(job.id, job.token) for job in jobs]
                # A cancel meanwhile changes nothing: the attempt ran and timed out.
                await self._outlive(asyncio.gather(returned, *marks, return_exceptions=True))
                message += f"; its thread ran on for {time.monotonic() - started:.1f} s"
            raise TimeoutError(message) from None
        except asyncio.CancelledError:
            if not thread.cancel():
                await self._outlive(returned)
            raise
        finally:
            self._running.pop(thread, None)

    async def _outlive(self, running: asyncio.Future[Any]) -> None:
        """Wait for a handler thread to return, however often this task is cancelled
        meanwhile, until the exit gives up on it (`outlive`)."""
        while not running.done():
            try:
                await asyncio.shield(running)
            except asyncio.CancelledError:
                if self.abandoning:
                    raise
            except Exception:  # the handler's: the caller decides the outcome
                return

    async def outlive(self, tasks: set[asyncio.Task[None]], budget: float) -> None:
        """Wait for the cancelled jobs; those whose sync handler thread still runs get
        `budget` seconds (the grace period's last half margin). Releasing such a job would
        let another worker start it beside our thread: left running at exit, its lease
        expires instead."""
        await asyncio.sleep(0)  # let every task take its cancellation
        running = [jobs for thread, jobs in self._running.items() if thread.running()]
        wait = budget if running else None
        if running:
            log.warning(
                "waiting for %d sync handlers that cannot be interrupted (%.1f s at most): "
                "their jobs are handed back only once their threads return: %s",
                len(running),
                wait,
                ", ".join(job.id for jobs in running for job in jobs),
            )
        _, pending = await asyncio.wait(tasks, timeout=wait)
        if pending:
            self._abandon(pending)
        await asyncio.gather(*tasks, return_exceptions=True)

    def _abandon(self, pending: set[asyncio.Task[None]]) -> None:
        self.abandoning = True
        left = [jobs for thread, jobs in self._running.items() if not thread.done()]
        log.error(
            "%d sync handlers still running at the end of the grace period; not releasing "
            "their jobs (another worker would start them while these threads run): their "
            "leases expire and other workers run them again: %s",
            len(left),
            ", ".join(job.id for jobs in left for job in jobs),
        )
        for task in pending:
            task.cancel()

    def shutdown(self) -> None:
        """At exit: queued calls are dropped; running threads are left to end on their own."""
        self._pool.shutdown(wait=False, cancel_futures=True)
