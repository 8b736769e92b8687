"""The one way jobfleet waits for something to happen, or a time to pass, whichever is first."""

from __future__ import annotations

import asyncio
import contextlib
import math


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until `event` is set or `timeout` seconds pass; True if it is set.

    `timeout` None or infinite waits for the event alone; a negative one counts as zero.
    Returns at once when the event is already set. Never raises TimeoutError, and does not
    clear the event.
    """
    if event.is_set():
        return True
    if timeout is None or timeout == math.inf:
        await event.wait()
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(timeout, 0.0)):
            await event.wait()
    return event.is_set()
