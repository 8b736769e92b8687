"""`on_failure` hooks (Sentry and the like): called with the failed job and its exception.

A hook runs beside the worker, never in its way: each call is a task of its own (a sync hook
in a thread), bounded by HOOK_TIMEOUT, and whatever it raises is logged and dropped. A hook
that hangs past the timeout is abandoned (a thread cannot be stopped; it runs on in the
background), and the worker carries on either way.

Hooks see the failures a worker records: a handler's exception, a timeout, an unknown
handler name. A job dead-lettered inside Redis because its leases kept expiring (a poison
job whose workers died) has no worker left to call a hook; `JobfleetDeadLettersGrowing`
counts those too.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger("jobfleet.hooks")

HOOK_TIMEOUT = 10.0  # seconds a hook call may take before the worker stops waiting for it
# dead: only once a job is dead-lettered (the default); every: on each failed attempt too.
HookWhen = Literal["dead", "every"]


@dataclass(frozen=True, slots=True)
class FailedJob:
    """The job whose attempt failed, as a hook sees it."""

    queue: str
    id: str
    name: str
    attempt: int
    max_attempts: int
    payload: Any
    error_type: str
    dead: bool  # dead-lettered by this failure (else it will be retried)
    worker_id: str


FailureHook = Callable[[FailedJob, BaseException], Any]


@dataclass(frozen=True, slots=True)
class Hook:
    fn: FailureHook
    when: HookWhen = "dead"


class Hooks:
    """The failure hooks of one worker and the calls of them still running."""

    def __init__(self, hooks: list[Hook], *, timeout: float = HOOK_TIMEOUT) -> None:
        self.hooks = hooks
        self.timeout = timeout
        self._calls: set[asyncio.Task[None]] = set()

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def failed(self, job: FailedJob, exc: BaseException) -> None:
        for hook in self.hooks:
            if job.dead or hook.when == "every":
                task = asyncio.get_running_loop().create_task(self._call(hook, job, exc))
                self._calls.add(task)
                task.add_done_callback(self._calls.discard)

    async def _call(self, hook: Hook, job: FailedJob, exc: BaseException) -> None:
        name = getattr(hook.fn, "__qualname__", repr(hook.fn))
        try:
            async with asyncio.timeout(self.timeout):
                if inspect.iscoroutinefunction(hook.fn):
                    await hook.fn(job, exc)
                else:
                    await asyncio.to_thread(hook.fn, job, exc)
        except TimeoutError:
            log.warning(
                "on_failure hook %s took longer than %g s for job %s; not waiting for it",
                name,
                self.timeout,
                job.id,
            )
        except Exception as hook_exc:
            # Its type only: a hook's message may carry what it was sending (a DSN, a token).
            log.warning(
                "on_failure hook %s raised %s for job %s", name, type(hook_exc).__name__, job.id
            )

    async def settle(self, timeout: float) -> None:
        """At exit: give running calls up to `timeout` seconds, then cancel them."""
        if not self._calls:
            return
        _, pending = await asyncio.wait(set(self._calls), timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
