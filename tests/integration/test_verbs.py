"""The job-management verbs against a real Redis: jobs (paging), remove, retry, cancel,
clear, obliterate, queues."""

from __future__ import annotations

import asyncio
import random

import jobfleet
import pytest
from jobfleet.engine import ClaimPolicy, Failure
from jobfleet.keys import QUEUES, QueueKeys

KEYS = QueueKeys("q")
POLICY = ClaimPolicy(lease_ms=60_000, worker_ttl_ms=60_000, max_attempts=3, poison_after=5)


async def claim(client: jobfleet.Client, n: int, token: str = "t", **kw: object):
    return await client.engine().claim(token=token, n=n, worker_id="w1", policy=POLICY, **kw)


async def walk(client: jobfleet.Client, state: str, limit: int = 7, **kw: object) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = await client.jobs(state, limit=limit, cursor=cursor, **kw)  # type: ignore[arg-type]
        ids += [j.id for j in page.jobs]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


async def test_waiting_in_claim_order_across_priorities(client):
    prios = ["low", "critical", "normal", "batch", "high"] * 6
    ids = [await client.enqueue("j", {"i": i}, priority=p) for i, p in enumerate(prios)]
    listed = await walk(client, "waiting", limit=4)
    claimed = [j.id for j in (await claim(client, len(ids))).jobs]
    assert listed == claimed and sorted(listed) == sorted(ids)


async def test_delayed_by_due_time_and_terminal_newest_first(client):
    ids = [await client.enqueue("j", None, delay=100 + (i * 7) % 10) for i in range(10)]
    due = {i: (await client.get(i)).run_at for i in ids}
    listed = await walk(client, "delayed", limit=3)
    assert sorted(listed) == sorted(ids)
    assert [due[i] for i in listed] == sorted(due.values())
    ready = [await client.enqueue("k", None) for _ in range(5)]
    jobs = (await claim(client, 5)).jobs
    await claim(client, 0, completions=[(j.id, j.token, "null") for j in jobs])
    done = await walk(client, "completed", limit=2)
    assert sorted(done) == sorted(ready)
    infos = [await client.get(i) for i in done]
    assert [i.finished_at for i in infos] == sorted((i.finished_at for i in infos), reverse=True)


async def test_active_has_worker_and_lease(client):
    ids = [await client.enqueue("j", None) for _ in range(5)]
    await claim(client, 5)
    page = await client.jobs("active", limit=2)
    assert all(j.worker_id == "w1" and j.lease_deadline for j in page.jobs)
    assert sorted(await walk(client, "active", limit=2)) == sorted(ids)
    assert (await client.get(ids[0])).lease_deadline is not None


async def test_filters_by_name_and_error_type(client):
    for i in range(30):
        await client.enqueue("a" if i % 3 else "b", {"i": i}, max_attempts=1)
    jobs = (await claim(client, 30)).jobs
    fails = [
        Failure(j.id, j.token, "Boom" if k % 2 else "Bang", "m", "", 0) for k, j in enumerate(jobs)
    ]
    await claim(client, 0, failures=fails)
    booms = {f.id for f in fails if f.error_type == "Boom"}
    assert set(await walk(client, "dead", limit=3, error_type="Boom")) == booms
    b_ids = {j.id for j in jobs if j.name == "b"}
    assert set(await walk(client, "dead", name="b")) == b_ids
    both = await walk(client, "dead", name="b", error_type="Boom")
    assert set(both) == b_ids & booms


async def test_filters_scan_a_bounded_number_per_call(client):
    await client.enqueue_many([{"name": "common"} for _ in range(2500)])
    rare = await client.enqueue("rare", None)
    page = await client.jobs("waiting", name="rare", limit=10)
    assert page.jobs == [] and page.next_cursor is not None  # 1000 looked at, none matched
    assert await walk(client, "waiting", name="rare", limit=10) == [rare]


async def test_held_jobs_are_listed(redis_url, client, run_worker):
    ids = [await client.enqueue("j", {"i": i}) for i in range(6)]
    # one job per hour: the rest are held by the rate limit
    eng = client.engine()
    policy = ClaimPolicy(
        lease_ms=60_000,
        worker_ttl_ms=60_000,
        max_attempts=3,
        poison_after=5,
        flow='{"rl":{"max":1,"period":3600000}}',
    )
    got = await eng.claim(token="t", n=6, worker_id="w1", policy=policy)
    assert len(got.jobs) == 1
    held = await walk(client, "held", limit=2)
    assert sorted(held) == sorted(set(ids) - {got.jobs[0].id})
    assert held == [i for i in ids if i in held]  # claim order
    assert (await client.inspect()).held == 5
    # a walk while more jobs arrive and get held: the first five exactly once, in order
    seen: list[str] = []
    cursor = None
    while True:
        page = await client.jobs("held", limit=2, cursor=cursor)
        seen += [j.id for j in page.jobs]
        for prio in ("critical", "batch"):  # held ahead of them all, and behind
            await client.enqueue("j", None, priority=prio)
        await eng.claim(token="t", n=2, worker_id="w1", policy=policy)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == held
    await client.clear(states=["waiting"])
    for job_id in set(await walk(client, "held")) - set(held):
        await client.remove(job_id)
    assert await client.cancel(held[0]) == "cancelled"
    await client.remove(held[1])
    assert await client.clear(states=["held"]) == 3
    assert await client.jobs("held") == jobfleet.JobPage(jobs=[], next_cursor=None)


SETS = {
    "waiting": KEYS.ready,
    "delayed": KEYS.delayed,
    "active": KEYS.active,
    "completed": KEYS.done,
    "dead": KEYS.dead,
}
FIELDS = ("state", "attempt", "seq", "run_at", "finished_at", "token")


async def snapshot(client: jobfleet.Client, state: str) -> dict[str, tuple[str, ...]]:
    """The jobs in `state` now (read from its set directly), each with the fields that change
    whenever a job leaves a state and comes back."""
    ids = [str(i) for i in await client.conn.zrange(SETS[state], 0, -1)]
    rows = await client.engine().job_hashes(ids, FIELDS)
    return {i: tuple(map(str, row)) for i, row in zip(ids, rows, strict=True)}


async def test_pagination_while_jobs_move(client):
    """Walks interleaved with enqueues, claims, completions, failures and promotions: no job
    twice in one walk, and every job that stayed in the state throughout exactly once."""
    rnd = random.Random(12)
    eng = client.engine()
    prios = list(jobfleet.Priority)
    for _ in range(200):
        await client.enqueue("j", None, priority=rnd.choice(prios))
    for _ in range(100):
        await client.enqueue("j", None, delay=rnd.choice([0.001, 0.05, 3600, 7200]))
    tok = 0
    for state in ("waiting", "delayed", "active", "completed", "dead"):
        for _ in range(3):
            before = await snapshot(client, state)
            seen: list[str] = []
            cursor = None
            while True:
                page = await client.jobs(state, limit=9, cursor=cursor)  # type: ignore[arg-type]
                seen += [j.id for j in page.jobs]
                # move things around between pages
                for _ in range(rnd.randint(1, 3)):
                    await client.enqueue("j", None, priority=rnd.choice(prios))
                await client.enqueue("j", None, delay=rnd.choice([0.001, 3600]))
                tok += 1
                got = await eng.claim(
                    token=f"t{tok}", n=rnd.randint(0, 4), worker_id="w1", policy=POLICY
                )
                done = [(j.id, j.token, "null") for j in got.jobs[:1]]
                fails = [
                    Failure(j.id, j.token, "E", "m", "", rnd.choice([0, 1, 3600_000]))
                    for j in got.jobs[1:3]
                ]  # the rest stay active
                await eng.claim(
                    token=f"u{tok}",
                    n=0,
                    worker_id="w1",
                    policy=POLICY,
                    completions=done,
                    failures=fails,
                )
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            after = await snapshot(client, state)
            assert len(seen) == len(set(seen)), state
            stayed = {i for i, row in before.items() if after.get(i) == row}
            assert stayed <= set(seen), (state, stayed - set(seen))


async def test_remove(client):
    a = await client.enqueue("j", None, dedup_key="k1")
    b = await client.enqueue("j", None, delay=3600)
    c = await client.enqueue("j", None)
    await client.remove(a)
    await client.remove(b)
    with pytest.raises(jobfleet.JobNotFound):
        await client.get(a)
    d = await client.enqueue("j", None, dedup_key="k1")
    assert d != a  # the dedup key went too
    claimed = (await claim(client, 5)).jobs
    assert {j.id for j in claimed} == {c, d}
    with pytest.raises(jobfleet.JobActive, match="cancel it") as err:
        await client.remove(c)
    assert err.value.job_id == c and err.value.state == "active"
    assert (await client.get(c)).state is jobfleet.JobState.ACTIVE  # nothing changed
    with pytest.raises(jobfleet.JobNotFound):
        await client.remove("nope")
    await claim(client, 0, completions=[(j.id, j.token, "null") for j in claimed])
    await client.remove(c)
    stats = await client.inspect()
    assert (stats.waiting, stats.delayed, stats.active, stats.completed) == (0, 0, 0, 1)
    assert stats.removed_total == 3


async def test_retry(client):
    a = await client.enqueue("j", None, max_attempts=1)
    [job] = (await claim(client, 1)).jobs
    with pytest.raises(jobfleet.JobStateError, match="not dead") as err:
        await client.retry(a)
    assert err.value.state == "active"
    await claim(client, 0, failures=[Failure(a, job.token, "E", "m", "", 0)])
    assert (await client.get(a)).state is jobfleet.JobState.DEAD
    await client.retry(a)
    info = await client.get(a)
    assert (info.state, info.attempt) == (jobfleet.JobState.WAITING, 0)
    [again] = (await claim(client, 1, token="t2")).jobs
    assert again.id == a and again.attempt == 1
    with pytest.raises(jobfleet.JobNotFound):
        await client.retry("nope")


async def test_cancel_waiting_delayed_and_final(client):
    a = await client.enqueue("j", None)
    b = await client.enqueue("j", None, delay=3600)
    assert await client.cancel(a) == "cancelled"
    assert await client.cancel(b) == "cancelled"
    info = await client.get(a)
    assert info.state is jobfleet.JobState.CANCELLED and info.state.final
    with pytest.raises(jobfleet.JobStateError, match="already cancelled") as err:
        await client.cancel(a)
    assert err.value.state == "cancelled"
    stats = await client.inspect()
    assert (stats.waiting, stats.delayed, stats.cancelled, stats.cancelled_total) == (0, 0, 2, 2)
    assert set(await walk(client, "cancelled")) == {a, b}
    assert (await claim(client, 5)).jobs == []
    c = await client.enqueue("j", None)
    [job] = (await claim(client, 1)).jobs
    await claim(client, 0, completions=[(c, job.token, "null")])
    with pytest.raises(jobfleet.JobStateError, match="already completed"):
        await client.cancel(c)
    with pytest.raises(jobfleet.JobNotFound):
        await client.cancel("nope")


async def test_cancel_active_fences_the_late_outcome(client):
    a = await client.enqueue("j", None)
    [job] = (await claim(client, 1)).jobs
    assert await client.cancel(a) == "cancelling"
    assert await client.conn.lrange(KEYS.worker_wake("w1"), 0, -1) == ["cancel"]
    reply = await claim(client, 0, completions=[(a, job.token, "null")])
    assert reply.stale_acks == 1
    info = await client.get(a)
    assert (info.state, info.attempt) == (jobfleet.JobState.CANCELLED, 1)
    renewal = await client.engine().extend(
        [(a, job.token)], lease_ms=1000, worker_id="w1", worker_ttl_ms=1000
    )
    assert renewal.cancelled == [a] and renewal.lost == []
    stats = await client.inspect()
    assert (stats.active, stats.completed, stats.cancelled) == (0, 0, 1)


async def race_cancel(
    client: jobfleet.Client, job_id: str, barrier: asyncio.Barrier, lag: int
) -> str:
    await barrier.wait()
    for _ in range(lag):  # loop turns before sending: which reaches Redis first varies
        await asyncio.sleep(0)
    try:
        return await client.cancel(job_id)
    except jobfleet.JobStateError as exc:
        return exc.state


async def race_complete(
    client: jobfleet.Client, job_id: str, token: str, tag: str, barrier: asyncio.Barrier, lag: int
) -> int:
    await barrier.wait()
    for _ in range(lag):
        await asyncio.sleep(0)
    done = [(job_id, token, "null")]
    return (await claim(client, 0, token=tag, completions=done)).stale_acks


async def test_cancel_racing_completion_has_one_winner(redis_url):
    """Many trials of a cancel and a completion sent at once from two connections."""
    c1 = jobfleet.Client(redis_url, queue="q")
    c2 = jobfleet.Client(redis_url, queue="q")
    outcomes = {"cancel": 0, "complete": 0}
    rnd = random.Random(7)
    try:
        for trial in range(200):
            job_id = await c1.enqueue("j", None)
            [job] = (await claim(c1, 1, token=f"t{trial}")).jobs
            barrier = asyncio.Barrier(2)
            verdict, stale = await asyncio.gather(
                race_cancel(c2, job_id, barrier, rnd.randint(0, 3)),
                race_complete(c1, job_id, job.token, f"u{trial}", barrier, rnd.randint(0, 3)),
            )
            state = (await c1.get(job_id)).state.value
            if verdict == "cancelling":
                assert (stale, state) == (1, "cancelled")
                outcomes["cancel"] += 1
            else:
                assert (verdict, stale, state) == ("completed", 0, "completed")
                outcomes["complete"] += 1
        stats = await c1.inspect()
        assert stats.cancelled == stats.cancelled_total == outcomes["cancel"]
        assert stats.completed == stats.completed_total == outcomes["complete"]
        assert stats.active == stats.waiting == 0
    finally:
        await c1.aclose()
        await c2.aclose()


async def test_clear(client):
    for i in range(2500):
        await client.engine().enqueue([client.encode({"name": "j", "dedup_key": f"d{i}"})])
    await client.enqueue_many([{"name": "j", "delay": 3600} for _ in range(10)])
    [job] = (await claim(client, 1)).jobs
    with pytest.raises(jobfleet.ConfigError, match="states"):
        await client.clear(states=["active"])
    assert await client.clear(states=["delayed"]) == 10
    assert await client.clear() == 2499
    stats = await client.inspect()
    assert (stats.waiting, stats.delayed, stats.active) == (0, 0, 1)
    assert await client.conn.exists(f"{KEYS.prefix}dedup:d7") == 0
    assert (await client.get(job.id)).state is jobfleet.JobState.ACTIVE


async def test_obliterate(client):
    await client.enqueue_many([{"name": "j", "dedup_key": f"k{i}"} for i in range(1200)])
    await client.enqueue("j", None, queue="other")
    [job] = (await claim(client, 1)).jobs
    with pytest.raises(jobfleet.QueueBusy, match="force") as err:
        await client.obliterate()
    assert err.value.active == 1
    assert (await client.inspect()).waiting == 1199  # nothing changed
    assert not (await client.inspect()).paused
    removed = await client.obliterate(force=True)
    assert removed > 2400  # hashes and dedup keys
    assert [k async for k in client.conn.scan_iter(match=KEYS.pattern())] == []
    assert await client.queue_names() == ["other"]
    assert (await client.inspect(queue="other")).waiting == 1
    # the late completion of the worker is refused
    assert (await claim(client, 0, completions=[(job.id, job.token, "null")])).stale_acks == 1
    # an idle queue goes without force
    await client.obliterate(queue="other")
    assert await client.conn.smembers(QUEUES) == set()


async def test_queues_stats_of_every_queue(client):
    for i in range(120):
        await client.enqueue("j", None, queue=f"q{i:03d}")
    stats = await client.queues()
    assert [s.queue for s in stats] == [f"q{i:03d}" for i in range(120)]
    assert all(s.waiting == 1 for s in stats)
    assert await client.queue_names() == [s.queue for s in stats]


async def test_bad_input_writes_nothing(client):
    a = await client.enqueue("j", None)
    for limit in (0, 1001, 2.5, "x"):
        with pytest.raises(jobfleet.ConfigError, match="limit"):
            await client.jobs("waiting", limit=limit)  # type: ignore[arg-type]
    with pytest.raises(jobfleet.ConfigError, match="state"):
        await client.jobs("running")  # type: ignore[arg-type]
    with pytest.raises(jobfleet.ConfigError, match="cursor"):
        await client.jobs("waiting", cursor="garbage!")
    page = await client.jobs("waiting", limit=1)
    other = await client.enqueue("j", None)
    page = await client.jobs("waiting", limit=1)
    assert page.next_cursor is not None
    with pytest.raises(jobfleet.ConfigError, match="'waiting' jobs of queue 'q'"):
        await client.jobs("delayed", cursor=page.next_cursor)
    assert {j.id for j in (await client.jobs("waiting")).jobs} == {a, other}


def test_sync_twins(redis_url):
    with jobfleet.SyncClient(redis_url, queue="q") as c:
        a = c.enqueue("j", None)
        assert [j.id for j in c.jobs("waiting").jobs] == [a]
        assert c.cancel(a) == "cancelled"
        c.remove(a)
        assert c.queue_names() == ["q"] and c.queues()[0].queue == "q"
        assert c.clear() == 0
        assert c.cron_schedules() == []
        assert c.obliterate() > 0
