"""Cron schedulers against a real redis-server: one job per tick however many run them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import jobfleet
import pytest
import redis.asyncio as aioredis
from jobfleet.connection import connect
from jobfleet.cron import Scheduler
from jobfleet.engine import ClaimPolicy
from jobfleet.keys import QueueKeys, cron_field
from jobfleet.settings import CronSchedule
from redis_server import free_port
from waiting import until

Q = "q"
KEYS = QueueKeys(Q)
GRACE = 2.0  # restart tests: ticks later than this count as missed ...
GAP = 6.0  # ... and the schedulers stay down this long


def every_second(name: str = "tick", **kw: Any) -> CronSchedule:
    return CronSchedule(
        name=name, cron="* * * * * *", job="cron-job", payload={"schedule": name}, **kw
    )


@contextlib.asynccontextmanager
async def schedulers(
    redis_url: str, schedules: list[CronSchedule], n: int = 1, **kw: Any
) -> AsyncIterator[list[Scheduler]]:
    """`n` schedulers, each on its own client (as in separate workers), until the block ends."""
    clients = [jobfleet.Client(redis_url, queue=Q) for _ in range(n)]
    running = [Scheduler(c, Q, schedules, **kw) for c in clients]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stop)) for s in running]
    try:
        yield running
    finally:
        stop.set()
        # run() returns promptly once stop is set; a generous bound keeps a bug from hanging
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        for c in clients:
            await c.aclose()


async def redis_time(conn: aioredis.Redis) -> float:
    secs, usecs = await conn.time()
    return secs + usecs / 1e6


async def last_tick(conn: aioredis.Redis, name: str = "tick") -> int:
    raw = await conn.hget(KEYS.meta, cron_field(name))
    return -1 if raw is None else int(raw)


async def ticks(conn: aioredis.Redis, name: str = "tick") -> list[int]:
    """Ticks of `name` that have a job in Redis, in order."""
    keys = [k async for k in conn.scan_iter(match=KEYS.job(f"{cron_field(name)}:*"), count=1000)]
    return sorted(int(k.rsplit(":", 1)[1]) for k in keys)


async def reached(conn: aioredis.Redis, tick: float, name: str = "tick") -> None:
    async def check() -> bool:
        return await last_tick(conn, name) >= tick

    await until(check, timeout=90, what=f"schedule {name} to reach tick {tick:.0f}")


def consecutive(ts: list[int], step: int = 1) -> bool:
    return ts == list(range(ts[0], ts[-1] + 1, step))


async def test_three_schedulers_enqueue_exactly_one_job_per_tick(redis_url, client):
    conn = client.conn
    schedules = [
        every_second("tick"),
        CronSchedule(name="even", cron="* * * * * */2", job="cron-job", priority="high"),
        every_second("off", enabled=False),
    ]
    start = await redis_time(conn)
    async with schedulers(redis_url, schedules, n=3) as running:
        await reached(conn, start + 6, "tick")
        await reached(conn, start + 6, "even")
    every, even = await ticks(conn, "tick"), await ticks(conn, "even")
    assert len(every) >= 6 and consecutive(every), every  # none missing in the middle
    assert every[0] > start  # a schedule without history starts from now: no backfill
    assert len(even) >= 3 and consecutive(even, 2) and even[0] % 2 == 0, even
    # exactly one job per tick: no write beyond one per tick, whoever made it
    stats = await client.inspect()
    assert stats.waiting == len(every) + len(even)
    assert int(await conn.hget(KEYS.stats, "enqueued_total")) == len(every) + len(even)
    assert sum(s.counters.enqueued for s in running) == len(every) + len(even)
    assert all(s.counters.errors == 0 and s.counters.catch_ups == 0 for s in running)
    # the disabled schedule did nothing
    assert await ticks(conn, "off") == []
    assert await conn.hget(KEYS.meta, cron_field("off")) is None
    # the jobs are the schedule's, under deterministic ids
    job = await client.get(f"cron:tick:{every[0]}")
    assert (job.name, job.payload) == ("cron-job", {"schedule": "tick"})
    high = await client.get(f"cron:even:{even[0]}")
    assert high.priority is jobfleet.Priority.HIGH
    assert await last_tick(conn, "tick") == every[-1]
    assert "q" in await client.queue_names()
    # published for readers that run no scheduler: the enabled schedules, with their ticks
    published = await client.cron_schedules()
    assert [c.name for c in published] == ["even", "tick"]
    tick = published[1]
    assert (tick.cron, tick.timezone, tick.job) == ("* * * * * *", "UTC", "cron-job")
    assert tick.last_tick == every[-1]
    assert tick.next_tick is not None and tick.next_tick > every[0]


async def test_run_once_enqueues_one_catch_up_job_for_a_gap(redis_url, client):
    conn = client.conn
    schedule = [every_second(missed="run_once")]
    start = await redis_time(conn)
    async with schedulers(redis_url, schedule, grace=GRACE):
        await reached(conn, start + 2)
    before = await last_tick(conn)
    await asyncio.sleep(GAP)  # downtime: ticks before + 1 ... are missed
    restart = await redis_time(conn)
    async with schedulers(redis_url, schedule, grace=GRACE) as [again]:
        await reached(conn, restart + 3)
    after = [t for t in await ticks(conn) if t > before]
    assert again.counters.catch_ups == 1
    catch_up, on_time = after[0], after[1:]
    assert before + 2 <= catch_up < restart  # one tick of the gap, not every one of them
    assert on_time and consecutive(on_time) and on_time[0] >= restart - GRACE
    assert again.counters.enqueued == len(after)


async def test_skip_enqueues_nothing_for_a_gap(redis_url, client):
    conn = client.conn
    schedule = [every_second(missed="skip")]
    start = await redis_time(conn)
    async with schedulers(redis_url, schedule, n=3, grace=GRACE):
        await reached(conn, start + 2)
    before = await last_tick(conn)
    await asyncio.sleep(GAP)
    restart = await redis_time(conn)
    async with schedulers(redis_url, schedule, n=3, grace=GRACE) as running:
        await reached(conn, restart + 3)
    after = [t for t in await ticks(conn) if t > before]
    assert consecutive(after)
    # every job after the gap is a tick at most `grace` late when the schedulers came back
    assert after[0] >= restart - GRACE and after[0] >= before + 2
    assert sum(s.counters.catch_ups for s in running) == 0


async def test_a_trimmed_tick_is_not_enqueued_again_by_a_late_scheduler(redis_url, client):
    conn = client.conn
    eng = client.engine()
    schedule = [every_second()]
    start = await redis_time(conn)
    async with schedulers(redis_url, schedule):
        await reached(conn, start + 3)
    done = await ticks(conn)
    assert len(done) >= 3
    # a worker runs them all, and retention (keep no finished job) deletes them
    policy = ClaimPolicy(
        lease_ms=60_000, worker_ttl_ms=60_000, max_attempts=3, poison_after=3, keep_done=0
    )
    claimed = await eng.claim(token="t", n=100, worker_id="w", policy=policy)
    await eng.claim(
        token="t2",
        n=0,
        worker_id="w",
        policy=policy,
        completions=[(j.id, "t", "null") for j in claimed.jobs],
    )
    assert await ticks(conn) == []
    # a scheduler that believes those ticks are still to do (its view of the last tick lags)
    await conn.hset(KEYS.meta, cron_field("tick"), done[0] - 1)
    resumed = await redis_time(conn)
    async with schedulers(redis_url, schedule) as [late]:
        await reached(conn, resumed + 2)
    again = await ticks(conn)
    assert not set(again) & set(done), "a trimmed tick was enqueued a second time"
    assert late.counters.duplicates >= len(done)  # it did try: the dedup key refused them
    enqueued = int(await conn.hget(KEYS.stats, "enqueued_total"))
    assert enqueued == len(done) + len(again)


@pytest.mark.slow
async def test_redis_restart_delays_ticks_without_losing_or_doubling_any(aof_redis):
    conn = connect(aof_redis.url)  # reconnects after the restart
    try:
        start = await redis_time(conn)
        async with schedulers(aof_redis.url, [every_second()]) as [scheduler]:
            await reached(conn, start + 2)
            await asyncio.to_thread(aof_redis.stop)
            await asyncio.sleep(3)
            await asyncio.to_thread(aof_redis.start)
            restarted = await redis_time(conn)
            await reached(conn, restarted + 2)
        assert scheduler.counters.errors >= 1
        seen = await ticks(conn)
        # within the grace period late ticks are still on time: all of them, once each
        assert consecutive(seen) and seen[-1] >= restarted + 2
        assert int(await conn.hget(KEYS.stats, "enqueued_total")) == len(seen)
    finally:
        await conn.aclose()


async def test_a_scheduler_without_redis_keeps_trying_and_stops_when_asked():
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    async with schedulers(url, [every_second()]) as [scheduler]:

        async def failed_twice() -> bool:
            return scheduler.counters.errors >= 2

        await until(failed_twice, timeout=90, what="two failed rounds")
    assert scheduler.counters.enqueued == 0


async def test_invalid_schedules_fail_at_construction(redis_url, client):
    with pytest.raises(jobfleet.ConfigError, match="schedule 'bad': cron '61 \\* \\* \\* \\*'"):
        Scheduler(client, Q, [CronSchedule(name="bad", cron="61 * * * *", job="j")])
    huge = CronSchedule(name="big", cron="@hourly", job="j", payload="x" * 2_000_000)
    with pytest.raises(jobfleet.ConfigError, match="schedule 'big': payload"):
        Scheduler(client, Q, [huge])


async def test_no_enabled_schedule_returns_at_once(redis_url, client):
    scheduler = Scheduler(client, Q, [every_second(enabled=False)])
    await asyncio.wait_for(scheduler.run(asyncio.Event()), timeout=30)
    assert await client.conn.keys("*") == []


async def test_worker_processes_run_the_queue_schedules(client, redis_url, spawn_worker):
    """Three real `jobfleet worker` processes with a per-second schedule: one job per tick."""
    schedule = {"name": "heartbeat", "cron": "* * * * * *", "job": "record"}
    workers = [spawn_worker(redis_url, queue={"schedules": [schedule]}) for _ in range(3)]

    async def enough() -> bool:
        return (await client.inspect()).completed >= 6

    await until(enough, what="six ticks to run")
    for w in workers:
        assert w.terminate() == 0
    prefix = client.engine().keys.job("cron:heartbeat:")
    keys = await client.conn.keys(prefix + "*")
    ticks = sorted(int(k.rsplit(":", 1)[1]) for k in keys)
    assert len(ticks) >= 6
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))  # consecutive, none missing
    stats = await client.inspect()
    assert stats.dead == 0 and stats.failed_total == 0
    # Three schedulers raced for every tick; each tick was written exactly once.
    raw = await client.conn.hget(client.engine().keys.stats, "enqueued_total")
    assert int(raw) == len(ticks)
