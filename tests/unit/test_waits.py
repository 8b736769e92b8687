"""jobfleet.waits: an event or a timeout, whichever comes first."""

import asyncio
import math
import time

from jobfleet.waits import wait_event


async def test_returns_false_at_the_timeout():
    event = asyncio.Event()
    start = time.monotonic()
    assert await wait_event(event, 0.05) is False
    assert time.monotonic() - start >= 0.04


async def test_returns_true_when_set_meanwhile_and_leaves_it_set():
    event = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 10) is True
    assert event.is_set()


async def test_set_already_negative_and_infinite_timeouts():
    event = asyncio.Event()
    assert await wait_event(event, -1) is False
    event.set()
    assert await wait_event(event, 0) is True
    assert await wait_event(event, math.inf) is True
    assert await wait_event(event, None) is True
