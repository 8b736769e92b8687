"""The engine's scripts, driven directly: ordering, delays, dedup, fencing, leases, retention."""

from __future__ import annotations

import asyncio
import contextlib

import jobfleet
import pytest
import redis.asyncio as aioredis
from jobfleet.engine import ClaimPolicy, Engine, Failure

POLICY = ClaimPolicy(lease_ms=60_000, worker_ttl_ms=60_000, max_attempts=3, poison_after=3)


async def snapshot(conn: aioredis.Redis) -> dict[str, bytes]:
    """Every key with its serialized value: equal snapshots mean nothing was written."""
    keys = sorted(await conn.keys("*"))
    return {k: await conn.dump(k) for k in keys}


async def claim(eng: Engine, n: int, token: str = "t", **kw) -> list:
    return (
        await eng.claim(token=token, n=n, worker_id="w", policy=kw.pop("policy", POLICY), **kw)
    ).jobs


async def test_critical_enqueued_last_is_claimed_first_and_fifo_holds_within_a_level(client):
    normal = [await client.enqueue("n", i) for i in range(20)]
    low = await client.enqueue("l", 0, priority="low")
    critical = await client.enqueue("c", 0, priority="critical")
    high = await client.enqueue("h", 0, priority=jobfleet.Priority.HIGH)
    order = [j.id for j in await claim(client.engine(), 100)]
    assert order == [critical, high, *normal, low]


async def test_a_plain_one_job_enqueue_writes_what_a_batch_writes(client):
    # One job without options takes the short paths (Client._plain, the script's first
    # branch); a batch of two takes the script's loop, a spec with an option given as its
    # default the full encoding.
    conn, eng = client.conn, client.engine()
    one = await client.enqueue("n", {"a": 1}, priority="high")
    batch = await client.enqueue_many([{"name": "n", "payload": {"a": 1}, "priority": 1}] * 2)
    spec = jobfleet.JobSpec(name="n", payload={"a": 1}, priority=1, delay=None)
    full = await client.enqueue_many([spec])
    ids = [one, *batch, *full]
    hashes = [await conn.hgetall(eng.keys.job(i)) for i in ids]
    for h in hashes:
        assert set(h) == {"name", "payload", "priority", "enqueued_at", "state", "seq"}
        assert (h["name"], h["payload"], h["priority"], h["state"]) == (
            "n",
            '{"a":1}',
            "1",
            "waiting",
        )
    assert [int(h["seq"]) for h in hashes] == [1, 2, 3, 4]
    ready = await conn.zrange(eng.keys.ready, 0, -1, withscores=True)
    assert [(m, s) for m, s in ready] == [(i, float(2**48 + n)) for n, i in enumerate(ids, 1)]
    assert (await client.inspect()).waiting == 4
    assert await conn.hget(eng.keys.stats, "enqueued_total") == "4"
    assert await conn.llen(eng.keys.wake) == 1  # the doorbell rung, once
    assert [j.id for j in await claim(eng, 10)] == ids


async def test_bulk_enqueue_keeps_fifo_across_chunks(client):
    ids = await client.enqueue_many([{"name": "x", "payload": i} for i in range(1_234)])
    assert len(set(ids)) == 1_234
    got = []
    while batch := await claim(client.engine(), 500):
        got.extend(j.id for j in batch)
    assert got == ids


async def test_delayed_job_is_not_claimable_before_its_time(client):
    job_id = await client.enqueue("later", None, delay=0.4)
    assert (await client.get(job_id)).state is jobfleet.JobState.DELAYED
    assert await claim(client.engine(), 10) == []

    async def claimed():
        return [j.id for j in await claim(client.engine(), 10)] == [job_id]

    deadline = asyncio.get_running_loop().time() + 30
    while not await claimed():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    info = await client.get(job_id)
    # Both times come from the Redis clock.
    assert info.started_at >= info.run_at


async def test_dedup_returns_the_first_id_and_writes_nothing(client):
    first = await client.enqueue("charge", {"n": 1}, dedup_key="order-42", dedup_ttl=60)
    before = await snapshot(client.conn)
    again = await client.enqueue("charge", {"n": 2}, dedup_key="order-42")
    assert again == first
    assert await snapshot(client.conn) == before
    assert (await client.get(first)).payload == {"n": 1}


async def test_dedup_window_expires(client):
    first = await client.enqueue("charge", 1, dedup_key="k", dedup_ttl=0.05)
    await asyncio.sleep(0.2)
    assert await client.enqueue("charge", 2, dedup_key="k") != first


async def test_same_job_id_is_idempotent(client):
    a = await client.enqueue("x", 1, job_id="invoice-7")
    before = await snapshot(client.conn)
    assert await client.enqueue("x", 2, job_id="invoice-7") == a == "invoice-7"
    assert await snapshot(client.conn) == before


async def test_completion_with_a_stale_token_is_rejected_and_changes_nothing(client):
    eng = client.engine()
    job_id = await client.enqueue("x", 1)
    [_job] = await claim(eng, 1, token="old")
    # The lease expires and another worker claims the job under a new token.
    await client.conn.zadd(eng.keys.active, {job_id: 0})
    [again] = await claim(eng, 1, token="new")
    assert again.id == job_id and again.attempt == 2
    before = await snapshot(client.conn)
    result = await eng.claim(
        token="t2", n=0, worker_id="w", policy=POLICY, completions=[(job_id, "old", '"late"')]
    )
    assert result.stale_acks == 1
    failed = await eng.claim(
        token="t3",
        n=0,
        worker_id="w",
        policy=POLICY,
        failures=[Failure(job_id, "old", "E", "m", "tb", 0)],
    )
    assert failed.stale_acks == 1
    after = await snapshot(client.conn)
    # Only the worker registry's heartbeat may move; the job and every set are untouched.
    before.pop(eng.keys.workers), after.pop(eng.keys.workers)
    assert after == before
    await eng.claim(
        token="t4", n=0, worker_id="w", policy=POLICY, completions=[(job_id, "new", '"ok"')]
    )
    info = await client.get(job_id)
    assert info.state is jobfleet.JobState.COMPLETED and info.result == "ok"


async def test_failures_retry_with_backoff_then_dead_letter_with_context(client):
    eng = client.engine()
    job_id = await client.enqueue("x", {"card": 4242}, max_attempts=2)
    [job] = await claim(eng, 1)
    await eng.claim(
        token="t",
        n=0,
        worker_id="w",
        policy=POLICY,
        failures=[Failure(job_id, "t", "IOError", "flaky", "tb1", 50)],
    )
    info = await client.get(job_id)
    assert info.state is jobfleet.JobState.DELAYED and info.error.message == "flaky"
    await asyncio.sleep(0.1)
    [job] = await claim(eng, 1, token="t2")
    assert job.attempt == 2
    await eng.claim(
        token="t",
        n=0,
        worker_id="w",
        policy=POLICY,
        failures=[Failure(job_id, "t2", "IOError", "flaky again", "tb2", 50)],
    )
    info = await client.get(job_id)
    assert info.state is jobfleet.JobState.DEAD
    assert info.dead_reason == "attempts exhausted (2 of 2)"
    assert (info.error.type, info.error.message, info.error.traceback) == (
        "IOError",
        "flaky again",
        "tb2",
    )
    assert info.payload == {"card": 4242} and info.finished_at >= info.enqueued_at


async def test_permanent_failure_dead_letters_at_once(client):
    eng = client.engine()
    job_id = await client.enqueue("x", 1)
    await claim(eng, 1)
    await eng.claim(
        token="t",
        n=0,
        worker_id="w",
        policy=POLICY,
        failures=[Failure(job_id, "t", "Bad", "no", "tb", 0, "permanent: no")],
    )
    info = await client.get(job_id)
    assert info.state is jobfleet.JobState.DEAD and info.attempt == 1
    assert info.dead_reason == "permanent: no"


async def test_extend_renews_held_leases_and_reports_lost_ones(client):
    eng = client.engine()
    a, b = await client.enqueue("x", 1), await client.enqueue("x", 2)
    await claim(eng, 2, token="t")
    await client.conn.hset(eng.keys.job(b), "token", "someone-else")
    lost = await eng.extend(
        [(a, "t"), (b, "t")], lease_ms=123_000, worker_id="w", worker_ttl_ms=1000
    )
    assert lost.lost == [b] and lost.cancelled == []
    deadline = await client.conn.zscore(eng.keys.active, a)
    now = (await client.inspect()).time * 1000
    assert 100_000 < deadline - now <= 123_000


async def test_release_returns_jobs_to_their_place_without_counting_the_attempt(client):
    eng = client.engine()
    ids = [await client.enqueue("x", i) for i in range(3)]
    held = await claim(eng, 2, token="t")
    assert await eng.release([(j.id, "t") for j in held], worker_id="w") == 2
    infos = [await client.get(i) for i in ids]
    assert [i.attempt for i in infos] == [0, 0, 0]
    assert [i.state for i in infos] == [jobfleet.JobState.WAITING] * 3
    assert [j.id for j in await claim(eng, 3)] == ids


async def test_expired_leases_are_recovered_and_poison_jobs_dead_lettered(client):
    eng = client.engine()
    policy = ClaimPolicy(lease_ms=1, worker_ttl_ms=1000, max_attempts=10, poison_after=2)
    job_id = await client.enqueue("x", 1)
    await claim(eng, 1, policy=policy)
    await asyncio.sleep(0.01)
    [again] = await claim(eng, 1, policy=policy)  # recovered, then claimed again
    assert again.id == job_id and again.attempt == 2
    await asyncio.sleep(0.01)
    assert await claim(eng, 1, policy=policy) == []
    info = await client.get(job_id)
    assert info.state is jobfleet.JobState.DEAD and info.stalls == 2
    assert info.dead_reason == "poison: lease expired 2 times"
    stats = await client.inspect()
    assert stats.recovered_total == 2 and stats.dead == 1 and stats.active == 0


async def test_retention_trims_completed_jobs_by_count(client):
    eng = client.engine()
    policy = ClaimPolicy(
        lease_ms=60_000, worker_ttl_ms=1000, max_attempts=3, poison_after=3, keep_done=5
    )
    ids = await client.enqueue_many([{"name": "x"} for _ in range(12)])
    jobs = await claim(eng, 12)
    await eng.claim(
        token="t2",
        n=0,
        worker_id="w",
        policy=policy,
        completions=[(j.id, "t", "null") for j in jobs],
    )
    assert (await client.inspect()).completed == 5
    kept = 0
    for job_id in ids:
        with contextlib.suppress(jobfleet.JobNotFound):
            kept += (await client.get(job_id)).state is jobfleet.JobState.COMPLETED
    assert kept == 5  # the others' hashes are deleted with them


async def test_retention_trims_completed_jobs_by_age(client):
    eng = client.engine()
    policy = ClaimPolicy(
        lease_ms=60_000, worker_ttl_ms=1000, max_attempts=3, poison_after=3, done_age_ms=50
    )
    old = await client.enqueue("x")
    await eng.claim(
        token="t2",
        n=0,
        worker_id="w",
        policy=policy,
        completions=[(j.id, "t", "null") for j in await claim(eng, 1)],
    )
    await asyncio.sleep(0.1)
    new = await client.enqueue("x")
    await eng.claim(
        token="t3",
        n=0,
        worker_id="w",
        policy=policy,
        completions=[(j.id, "t", "null") for j in await claim(eng, 1)],
    )
    with pytest.raises(jobfleet.JobNotFound):
        await client.get(old)
    assert (await client.get(new)).state is jobfleet.JobState.COMPLETED


async def test_inspect_counts_and_oldest_wait(client):
    await client.enqueue("x", priority="critical")
    await client.enqueue_many([{"name": "x"} for _ in range(3)])
    await client.enqueue("x", delay=60)
    await asyncio.sleep(0.05)
    await claim(client.engine(), 1)
    s = await client.inspect()
    assert (s.waiting, s.delayed, s.active, s.dead) == (3, 1, 1, 0)
    assert s.waiting_by_priority["normal"] == 3 and s.waiting_by_priority["critical"] == 0
    assert s.oldest_wait >= 0.05
    assert s.workers == 1 and s.backlog == 4


async def test_inspect_counts_every_level_with_gaps_between_them(client):
    # Levels 1 and 4 used, 0, 2 and 3 empty: inspect finds each used level from the first job
    # at or past a level's start, so the empty ones between must come out as zeros.
    await client.enqueue_many([{"name": "x", "priority": "high"} for _ in range(2)])
    await asyncio.sleep(0.05)
    await client.enqueue_many([{"name": "x", "priority": "batch"} for _ in range(3)])
    await client.enqueue("x", queue="other", priority="critical")
    s = await client.inspect()
    assert s.waiting == 5
    assert s.waiting_by_priority == {"critical": 0, "high": 2, "normal": 0, "low": 0, "batch": 3}
    assert set(s.oldest_wait_by_priority) == {"high", "batch"}
    assert s.oldest_wait_by_priority["high"] >= 0.05
    assert s.oldest_wait == s.oldest_wait_by_priority["high"]
    # The pipelined read of every queue parses the same reply the same way.
    listed = {q.queue: q for q in await client.queues()}
    assert listed[client.queue].waiting_by_priority == s.waiting_by_priority
    assert set(listed[client.queue].oldest_wait_by_priority) == {"high", "batch"}
    assert listed["other"].waiting_by_priority["critical"] == 1 and listed["other"].waiting == 1


async def test_pause_stops_claims_but_not_enqueues(client):
    await client.pause()
    job_id = await client.enqueue("x")
    assert await claim(client.engine(), 5) == []
    assert (await client.inspect()).paused
    await client.resume()
    assert [j.id for j in await claim(client.engine(), 5)] == [job_id]
