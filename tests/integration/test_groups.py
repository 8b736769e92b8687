"""Job groups (issue #14) against a real Redis: deficit round robin inside claim, per-group
concurrency and rate limits across worker processes, pause, and crash recovery."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import jobfleet
import pytest
import redis
import redis.asyncio as aioredis
from drr_model import DrrModel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jobfleet.engine import ClaimPolicy, Failure
from jobfleet.keys import QueueKeys
from waiting import until
from windows import max_in_window

POLICY = ClaimPolicy(lease_ms=60_000, worker_ttl_ms=60_000, max_attempts=3, poison_after=3)
KEYS = QueueKeys("q")


def polled(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """A plain (sync Redis) check as `until` takes it."""

    async def poll() -> bool:
        return check()

    return poll


async def claim_groups(client: jobfleet.Client, n: int, token: str = "t") -> list[str | None]:
    """Claim up to n jobs straight through the engine; the group of each, in claim order."""
    eng = client.engine()
    result = await eng.claim(token=token, n=n, worker_id="w", policy=POLICY)
    rows = await eng.job_hashes([j.id for j in result.jobs], ["group"])
    return [row[0] for row in rows]


async def test_a_claim_takes_jobs_from_successive_groups(client):
    for g in ("a", "b", "c"):
        await client.enqueue_many([{"name": "x", "group": g} for _ in range(5)])
    await client.enqueue_many([{"name": "x"} for _ in range(5)])  # the default group
    got = await claim_groups(client, 8)
    assert got == [None, "a", "b", "c", None, "a", "b", "c"]


async def test_weights_share_service(client):
    await client.set_group_limits("heavy", weight=3)
    await client.enqueue_many([{"name": "x", "group": "heavy"} for _ in range(40)])
    await client.enqueue_many([{"name": "x", "group": "light"} for _ in range(40)])
    got = await claim_groups(client, 40)
    assert got.count("heavy") == 30 and got.count("light") == 10


async def test_priority_levels_stay_strict_across_groups(client):
    await client.enqueue_many([{"name": "x", "group": "a"} for _ in range(3)])
    await client.enqueue("x", group="b", priority="critical")
    await client.enqueue("x", group="a", priority="low")
    got = await claim_groups(client, 5)
    eng = client.engine()
    assert got[0] == "b"  # the only critical job goes first, whatever the ring says
    assert got.count("a") == 4
    info = await eng.job_hashes([], [])
    assert info == []


async def test_group_names_are_checked_before_anything_is_written(client):
    for bad in ("", "a:b", "tenant 1", "x" * 129, "-lead", "é"):
        with pytest.raises(jobfleet.ConfigError, match="invalid group name"):
            await client.enqueue("x", group=bad)
    with pytest.raises(TypeError, match="group must be a str"):
        await client.set_group_limits(7)  # type: ignore[arg-type]
    with pytest.raises(jobfleet.ConfigError, match="concurrency"):
        await client.set_group_limits("a", concurrency=0)
    with pytest.raises(jobfleet.ConfigError, match="weight"):
        await client.set_group_limits("a", weight=1001)
    assert await client.conn.keys("*") == []


async def test_inspect_counts_groups_and_held_jobs(client):
    await client.enqueue_many([{"name": "x", "group": "big"} for _ in range(7)])
    await client.enqueue_many([{"name": "x", "group": "small"} for _ in range(2)])
    await client.enqueue("x")
    await client.pause_group("big")
    stats = await client.inspect()
    assert (stats.waiting, stats.held) == (3, 7)
    assert stats.waiting_by_priority["normal"] == 3
    assert (stats.groups, stats.groups_held) == (2, 1)
    assert stats.top_groups == {"big": 7, "small": 2}
    gs = await client.group_stats("big")
    assert (gs.waiting, gs.active, gs.held, gs.paused) == (7, 0, "paused", True)
    assert await claim_groups(client, 10) == [None, "small", "small"]
    await client.resume_group("big")
    assert (await client.inspect()).waiting == 7
    assert await claim_groups(client, 10, token="t2") == ["big"] * 7
    gs = await client.group_stats("big")
    assert (gs.waiting, gs.active, gs.held) == (0, 7, None)


async def test_inspect_top_groups_are_exact_after_claims(client):
    """Claims do not count a group's backlog down (only enqueues count up), so inspect
    corrects the bounds it reports: the top is the groups' true waiting jobs, and a group a
    claim emptied is gone from the count at once."""
    sizes = {"a": 5, "b": 3, "c": 4}
    for g, n in sizes.items():
        await client.enqueue_many([{"name": "x", "group": g} for _ in range(n)])
    assert await claim_groups(client, 9) == ["a", "b", "c"] * 3
    stats = await client.inspect()
    assert (stats.groups, stats.top_groups) == (2, {"a": 2, "c": 1})
    assert (stats.waiting, (await client.group_stats("a")).waiting) == (3, 2)
    await client.enqueue("x", group="b")
    assert (await client.inspect()).top_groups == {"a": 2, "b": 1, "c": 1}


async def test_a_limit_set_while_jobs_run_counts_them(client):
    """A group without a concurrency limit is not counted in flight; a limit set while its
    jobs run counts them at once, so the limit holds from the first claim after it."""
    await client.enqueue_many([{"name": "x", "group": "g"} for _ in range(5)])
    eng = client.engine()
    first = await eng.claim(token="t1", n=2, worker_id="w", policy=POLICY)
    assert len(first.jobs) == 2
    assert await client.conn.hgetall(KEYS.prefix + "ginflight") == {}
    await client.set_group_limits("g", concurrency=2)
    assert await client.conn.hgetall(KEYS.prefix + "ginflight") == {"g": "2"}
    assert await claim_groups(client, 5, token="t2") == []
    assert (await client.group_stats("g")).held == "concurrency"
    done = [(first.jobs[0].id, "t1", "null")]
    got = await eng.claim(token="t3", n=5, worker_id="w", policy=POLICY, completions=done)
    assert len(got.jobs) == 1
    gs = await client.group_stats("g")
    assert (gs.waiting, gs.active) == (2, 2)
    assert await client.conn.hgetall(KEYS.prefix + "ginflight") == {"g": "2"}


async def test_oldest_wait_sees_grouped_jobs(client):
    await client.enqueue("x", group="a", priority="high")
    await asyncio.sleep(0.05)  # a lower bound on Redis's clock, not a speed
    stats = await client.inspect()
    assert stats.waiting_by_priority["high"] == 1
    assert stats.oldest_wait_by_priority["high"] >= 0.05


@pytest.mark.parametrize("limited", [False, True], ids=["no-limit", "concurrency-limit"])
async def test_every_way_back_to_waiting_returns_to_the_group(client, limited):
    """Retries, promoted delayed jobs, released and recovered leases and dead-letter replays
    of a grouped job go back to its group (and leave its in-flight count). Under a
    concurrency limit the group's in-flight counter follows every step; without one the
    group is not counted at all (claims skip the counter), and group_stats still tells."""
    eng = client.engine()
    if limited:
        await client.set_group_limits("g", concurrency=100)

    async def active() -> int:
        n = (await client.group_stats("g")).active
        counted = await client.conn.hgetall(KEYS.prefix + "ginflight")
        assert counted == ({"g": str(n)} if limited and n else {})
        return n

    delayed = await client.enqueue("x", group="g", delay=0.05)
    await client.enqueue("x", group="g")
    short = ClaimPolicy(lease_ms=100, worker_ttl_ms=60_000, max_attempts=3, poison_after=9)
    first = await eng.claim(token="t1", n=1, worker_id="w", policy=short)
    assert await active() == 1
    # A retry without delay: back in the group.
    fail = Failure(first.jobs[0].id, "t1", "E", "m", "", 0)
    await eng.claim(token="t2", n=0, worker_id="w", policy=short, failures=[fail])
    assert await active() == 0
    await until(lambda: _due(client, delayed), timeout=10)
    await eng.claim(token="t3", n=0, worker_id="w", policy=short)  # promotes the delayed one
    assert ((await client.group_stats("g")).waiting, await active()) == (2, 0)
    # Claimed, then the lease runs out: recovered into the group, counted out exactly once.
    got = await eng.claim(token="t4", n=2, worker_id="w", policy=short)
    assert len(got.jobs) == 2 and await active() == 2
    await asyncio.sleep(0.15)
    await eng.claim(token="t5", n=0, worker_id="w", policy=short)
    assert ((await client.group_stats("g")).waiting, await active()) == (2, 0)
    # Released at shutdown: back in the group.
    got = await eng.claim(token="t6", n=1, worker_id="w", policy=POLICY)
    assert await eng.release([(got.jobs[0].id, "t6")], worker_id="w") == 1
    assert ((await client.group_stats("g")).waiting, await active()) == (2, 0)
    # Dead-lettered, then replayed and retried: back in the group.
    got = await eng.claim(token="t7", n=2, worker_id="w", policy=POLICY)
    fails = [Failure(j.id, "t7", "E", "m", "", 0, "permanent: test") for j in got.jobs]
    await eng.claim(token="t8", n=0, worker_id="w", policy=POLICY, failures=fails)
    assert (await client.group_stats("g")).waiting == 0
    await client.retry(got.jobs[0].id)
    assert await client.dead_letters().replay([got.jobs[1].id]) == 1
    assert ((await client.group_stats("g")).waiting, await active()) == (2, 0)
    assert await claim_groups(client, 5, token="t9") == ["g", "g"]
    assert await active() == 2


async def _due(client: jobfleet.Client, job_id: str) -> bool:
    now = await client.conn.time()
    run_at = await client.conn.hget(KEYS.job(job_id), "run_at")
    return run_at is not None and int(run_at) <= now[0] * 1000 + now[1] // 1000


async def test_cancel_remove_clear_and_listing_with_groups(client):
    ids = await client.enqueue_many([{"name": "x", "group": "a"} for _ in range(4)])
    plain = await client.enqueue("x")
    assert await client.cancel(ids[0]) == "cancelled"
    await client.remove(ids[1])
    assert (await client.group_stats("a")).waiting == 2
    # The head of the group went: the group's ring position follows its next job.
    assert await claim_groups(client, 2) == [None, "a"]
    assert (await client.get(ids[2])).group == "a"
    got = await client.engine().claim(token="t2", n=0, worker_id="w", policy=POLICY)
    assert got.stale_acks == 0
    assert await client.cancel(ids[2]) == "cancelling"  # active: counted out of the group
    assert (await client.group_stats("a")).active == 0
    await client.pause_group("a")
    assert await client.clear(states=["waiting"]) == 0  # a paused group is held
    assert await client.clear(states=["held"]) == 1
    stats = await client.inspect()
    assert (stats.waiting, stats.held, stats.groups) == (0, 0, 0)
    assert plain not in ids


@pytest.mark.slow
async def test_fairness_bound_from_recorded_start_order(redis_url, run_worker):
    """Tenant A enqueues 20,000 jobs, then tenant B 100: every B job starts after at most
    G x batch of A's earlier jobs (G = 2 groups with work), counted from the order the
    handlers recorded."""
    batch, conc = 5, 10
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    registry = jobfleet.Registry()

    @registry.handler("probe")
    async def probe(job: jobfleet.JobContext) -> None:
        await r.rpush("order", job.payload["g"])

    async with jobfleet.Client(redis_url, queue="q") as c:
        await c.enqueue_many([{"name": "probe", "payload": {"g": "A"}, "group": "A"}] * 20_000)
        await r.rpush("order", "B-enqueued")
        await c.enqueue_many([{"name": "probe", "payload": {"g": "B"}, "group": "B"}] * 100)
        run_worker(registry, batch_size=batch, queue={"concurrency": conc})

        async def drained() -> bool:
            return await r.llen("order") >= 20_101

        await until(drained, timeout=300)
    order = await r.lrange("order", 0, -1)
    await r.aclose()
    start = order.index("B-enqueued")
    # Jobs claimed before B arrived may still start after the marker: one claim's worth.
    gaps, run = [], 0
    for g in order[start + 1 :]:
        if g == "B":
            gaps.append(run)
            run = 0
        else:
            run += 1
    assert len(gaps) == 100
    assert gaps[0] <= 2 * batch + conc
    assert max(gaps[1:]) <= 2 * batch, gaps


@pytest.mark.slow
async def test_group_concurrency_across_three_worker_processes(redis_url, spawn_worker):
    """group_concurrency 2 with three worker processes of 20 slots each: counted by the
    handlers themselves, no group ever has more than 2 jobs in flight, and each reaches 2."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    async with jobfleet.Client(redis_url, queue="q") as c:
        for g in ("a", "b", "c"):
            jobs = [{"name": "group-probe", "payload": {"g": g, "s": 0.02}, "group": g}] * 30
            await c.enqueue_many(jobs)
    for _ in range(3):
        spawn_worker(redis_url, queue={"concurrency": 20, "group_concurrency": 2})
    await until(polled(lambda: r.llen("order") >= 90), timeout=120)
    await until(polled(lambda: all(r.get(f"probe:{g}") == "0" for g in "abc")), timeout=30)
    for g in ("a", "b", "c"):
        peaks = [int(p) for p in r.lrange(f"peaks:{g}", 0, -1)]
        assert len(peaks) == 30
        assert max(peaks) == 2, (g, peaks)
    assert r.hgetall(KEYS.prefix + "ginflight") == {}
    r.close()


@pytest.mark.slow
async def test_group_rate_limit_never_exceeded_in_any_window(redis_url, run_worker):
    """At most 5 starts per 0.4 s per group, with two workers: checked on the start times
    the handlers read back (Redis's clock, which the window is kept on), in every window."""
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    registry = jobfleet.Registry()

    @registry.handler("tick")
    async def tick(job: jobfleet.JobContext) -> None:
        started = await r.hget(KEYS.job(job.id), "started_at")
        await r.rpush(f"starts:{job.payload['g']}", started or "")

    limit = jobfleet.GroupRateLimit(max=5, period=0.4)
    async with jobfleet.Client(redis_url, queue="q") as c:
        for g in ("a", "b"):
            await c.enqueue_many([{"name": "tick", "payload": {"g": g}, "group": g}] * 25)
        await c.enqueue_many([{"name": "tick", "payload": {"g": "free"}}] * 25)
        for _ in range(2):
            run_worker(registry, queue={"concurrency": 20, "group_rate_limit": limit})

        async def done() -> bool:
            return sum([await r.llen(f"starts:{g}") for g in ("a", "b", "free")]) >= 75

        await until(done, timeout=120)
    for g in ("a", "b"):
        starts = [int(s) for s in await r.lrange(f"starts:{g}", 0, -1)]
        assert len(starts) == 25
        assert max_in_window(starts, 400) == 5, (g, sorted(starts))
    await r.aclose()


@pytest.mark.slow
async def test_held_and_paused_groups_do_not_stall_the_others(redis_url, run_worker):
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    registry = jobfleet.Registry()
    gate = asyncio.Event()

    @registry.handler("work")
    async def work(job: jobfleet.JobContext) -> None:
        await r.rpush("order", job.payload["g"])
        if job.payload["g"] == "slow":
            await gate.wait()

    async with jobfleet.Client(redis_url, queue="q") as c:
        await c.pause_group("off")
        await c.enqueue_many([{"name": "work", "payload": {"g": "off"}, "group": "off"}] * 5)
        await c.enqueue_many([{"name": "work", "payload": {"g": "slow"}, "group": "slow"}] * 5)
        await c.enqueue_many([{"name": "work", "payload": {"g": "b"}, "group": "b"}] * 50)
        run_worker(registry, queue={"concurrency": 10, "group_concurrency": 1})

        async def b_done() -> bool:
            return (await r.lrange("order", 0, -1)).count("b") == 50

        await until(b_done, timeout=60)
        order = await r.lrange("order", 0, -1)
        assert order.count("slow") == 1 and "off" not in order
        stats = await c.inspect()
        assert (stats.waiting, stats.held, stats.active) == (0, 9, 1)
        gate.set()
        await c.resume_group("off")

        async def all_done() -> bool:
            return await r.llen("order") == 60

        await until(all_done, timeout=60)
    await r.aclose()


@pytest.mark.slow
async def test_kill_9_of_a_worker_holding_several_groups(redis_url, spawn_worker):
    """A worker holding jobs of three groups is killed: its leases expire, another worker
    finishes every job, and the groups' in-flight counts come back to zero."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    async with jobfleet.Client(redis_url, queue="q") as c:
        for g in ("a", "b", "c"):
            jobs = [{"name": "slow-unless-released", "group": g} for _ in range(4)]
            await c.enqueue_many(jobs)
        ids = [k.removeprefix(KEYS.prefix + "job:") for k in r.keys(KEYS.prefix + "job:*")]
        victim = spawn_worker(
            redis_url,
            env={"TEST_HANG": "1"},
            queue={"concurrency": 12, "lease": 1.0, "group_concurrency": 3},
        )
        await until(polled(lambda: len(r.keys("runs:*")) == 9), timeout=60)
        assert r.hgetall(KEYS.prefix + "ginflight") == {"a": "3", "b": "3", "c": "3"}
        os.kill(victim.pid, signal.SIGKILL)
        victim.proc.wait(timeout=30)
        spawn_worker(redis_url, queue={"concurrency": 12, "lease": 1.0, "group_concurrency": 3})
        for job_id in ids:
            info = await c.wait(job_id, timeout=120)
            assert info.state is jobfleet.JobState.COMPLETED
        stats = await c.inspect()
        assert (stats.waiting, stats.active, stats.groups) == (0, 0, 0)
        assert stats.recovered_total == 9
    assert r.hgetall(KEYS.prefix + "ginflight") == {}
    assert all(r.llen(f"runs:{i}") >= 1 for i in ids)
    r.close()


# -- the scheduler, property-tested: the real claim script against its model ---------------

GROUPS = [None, "a", "b", "c", "d"]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("enq"), st.sampled_from(GROUPS), st.integers(1, 12)),
        st.tuples(st.just("claim"), st.integers(1, 8), st.just(0)),
    ),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    weights=st.fixed_dictionaries({g: st.integers(1, 4) for g in GROUPS if g}),
    plan=ops,
)
def test_drr_claim_script_matches_its_model_and_the_bound(redis_url, weights, plan):
    """For any interleaving of enqueues across groups and weights and claims of any size,
    the claim script serves groups exactly as the DRR model does, and service stays within
    the fairness bound: two groups with work all along are never further apart than one
    turn each, in jobs per weight."""
    served = asyncio.run(_run_plan(redis_url, weights, plan))
    model = DrrModel({g: w for g, w in weights.items()})
    expected: list[Any] = []
    for op, a, k in plan:
        if op == "enq":
            model.enqueue(a, k)
        else:
            expected.extend(model.claim(a))
    assert served == expected, (weights, plan)
    model.check_bound()


async def _run_plan(url: str, weights: dict[str, int], plan: list[Any]) -> list[Any]:
    async with jobfleet.Client(url, queue="q") as c:
        await c.conn.flushdb()
        for g, w in weights.items():
            await c.set_group_limits(g, weight=w)
        served: list[Any] = []
        for op, a, k in plan:
            if op == "enq":
                await c.enqueue_many([{"name": "x", "group": a} for _ in range(k)])
            else:
                served.extend(await claim_groups(c, a))
        return served


async def test_listing_waiting_and_held_jobs_with_groups(client):
    """`jobs("waiting")`: the default group's line, then each group's, groups by name; a
    paused group's jobs are listed as held. Pages of 2 cut across every boundary."""
    plain = await client.enqueue_many([{"name": "x"} for _ in range(3)])
    b = await client.enqueue_many([{"name": "x", "group": "b"} for _ in range(2)])
    a = await client.enqueue_many([{"name": "x", "group": "a"} for _ in range(2)])
    c = await client.enqueue_many([{"name": "x", "group": "c"} for _ in range(3)])
    await client.pause_group("c")

    async def walk(state: str) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            page = await client.jobs(state, limit=2, cursor=cursor)
            seen.extend(j.id for j in page.jobs)
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor

    assert await walk("waiting") == plain + a + b
    assert await walk("held") == c


async def test_a_grouped_job_held_by_the_queue_rate_limit_keeps_its_place(client):
    """drr_take reads a group's jobs without their scores; a job the queue's rate limit holds
    takes its score from its hash (priority, seq), so when the window has room it goes back
    to its group ahead of a job enqueued after it."""
    eng = client.engine()
    limited = ClaimPolicy(lease_ms=60_000, worker_ttl_ms=60_000, max_attempts=3, poison_after=3,
                          flow='{"rl":{"max":2,"period":300}}')  # fmt: skip
    first = [await client.enqueue("x", group="g") for _ in range(4)]
    got = await eng.claim(token="t1", n=4, worker_id="w", policy=limited)
    assert [j.id for j in got.jobs] == first[:2]  # the other two are held
    later = await client.enqueue("x", group="g")

    async def claimed() -> list[str]:
        got = await eng.claim(token="t2", n=3, worker_id="w", policy=limited)
        seen.extend(j.id for j in got.jobs)
        return seen

    seen: list[str] = []
    await until(lambda: _at_least(claimed, 3), timeout=10, what="the held jobs back")
    assert seen[:3] == [*first[2:], later]


async def _at_least(claimed: Callable[[], Awaitable[list[str]]], n: int) -> bool:
    return len(await claimed()) >= n


async def test_rings_are_skiplists_from_the_first_group(client):
    """A ring's members carry a 64-byte prefix, so Redis keeps even a ring of a few groups as
    a skiplist (a group's move costs O(log G), not a scan of the ring); the prefix changes
    neither the order of service nor what inspect reports."""
    for g in ("b", "a", "c"):
        await client.enqueue_many([{"name": "x", "group": g} for _ in range(3)])
    ring = KEYS.prefix + "gring:2"
    assert await client.conn.object("encoding", ring) == "skiplist"
    assert await claim_groups(client, 4) == ["a", "b", "c", "a"]  # equal turns: by name
    assert (await client.inspect()).waiting == 5
