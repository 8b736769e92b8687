"""Polling for eventual conditions, with generous deadlines (never a timing assertion)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from jobfleet.process_pool import pid_alive


async def until(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 60.0, what: str = "condition"
) -> None:
    """Wait until `check()` is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    """Whether a process of that pid still exists (what a test waits to become false)."""
    return pid_alive(pid)
