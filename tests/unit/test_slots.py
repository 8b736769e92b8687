"""The slots a worker's main loop and its waker share: who may claim for which slots (no Redis)."""

import asyncio

from jobfleet.engine import ClaimedJob
from jobfleet.slots import Running, Slots


def running(job_id: str) -> Running:
    return Running(ClaimedJob(job_id, "noop", "{}", 1, None, None, None, "t"), None)


def test_the_main_loop_claims_up_to_one_claims_worth_of_free_slots():
    slots = Slots(concurrency=5, per_claim=3)
    assert slots.to_claim(has_acks=False) == 3
    for i in range(4):
        slots.occupy(running(f"j{i}"))
    assert (slots.free, slots.to_claim(has_acks=False)) == (1, 1)
    slots.free_slot("j0")
    assert slots.free == 2


async def test_lent_slots_are_the_wakers_until_it_returns_them():
    slots = Slots(concurrency=4, per_claim=3)
    slots.occupy(running("j0"))
    slots.reserve_for_waker()
    assert (slots.reserved, slots.free) == (3, 0)
    assert slots.to_claim(has_acks=False) == 0  # the waker watches for new work
    assert slots.to_claim(has_acks=True) == 0  # acks go out, for the slots left (none)
    slots.reserve_for_waker()  # lends nothing more while the waker holds some
    assert slots.reserved == 3
    assert await asyncio.wait_for(slots.lent_to_waker(), 1) == 3
    slots.return_reserved()
    assert (slots.reserved, slots.free) == (0, 3)
    await asyncio.wait_for(slots.wait(10), 1)  # the return woke the main loop


async def test_a_waker_that_found_the_line_empty_spares_the_next_claim_once():
    slots = Slots(concurrency=4, per_claim=2)
    slots.reserve_for_waker()
    await slots.lent_to_waker()
    slots.return_reserved()
    slots.waker_claimed(took=1, asked=2)
    assert slots.to_claim(has_acks=True) == 0
    assert slots.to_claim(has_acks=False) == 2
    slots.waker_claimed(took=2, asked=2)
    assert slots.to_claim(has_acks=False) == 2


async def test_a_stop_ends_the_waker_and_lends_nothing():
    slots = Slots(concurrency=4, per_claim=2)
    slots.reserve_for_waker()
    slots.stop()
    assert await asyncio.wait_for(slots.lent_to_waker(), 1) == 0
    assert slots.reserved == 0
    slots.reserve_for_waker()
    assert (slots.reserved, slots.to_claim(has_acks=True)) == (0, 0)
    await asyncio.wait_for(slots.wait(float("inf")), 1)


async def test_wait_times_out_without_a_change():
    slots = Slots(concurrency=1, per_claim=1)
    await asyncio.wait_for(slots.wait(0.01), 1)
    slots.forget("nothing")  # leaves no wake-up behind
    await asyncio.wait_for(slots.wait(0.01), 1)


def test_while_jobs_run_a_claim_takes_every_free_slot_and_half_when_none_runs():
    slots = Slots(concurrency=10, per_claim=5, most=10)
    assert slots.to_claim(has_acks=False) == 5  # none running: half, the next claim travels
    for i in range(10):
        slots.occupy(running(f"j{i}"))
    for i in range(8):
        slots.free_slot(f"j{i}")
    assert (slots.free, slots.to_claim(has_acks=True)) == (8, 8)  # one claim, not 5 + 3
    slots.free_slot("j8")
    slots.free_slot("j9")
    assert slots.to_claim(has_acks=True) == 5
    slots.reserve_for_waker()  # the waker still holds at most half
    assert slots.reserved == 5
