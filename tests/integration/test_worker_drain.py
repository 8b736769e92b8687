"""Drained workers (the operator's scale-in): finish and renew what they hold, claim nothing,
claim again when undrained or when the drain lapses; against a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import jobfleet
import pytest
from jobfleet.worker import Worker
from waiting import until


def holding() -> tuple[jobfleet.Registry, asyncio.Event]:
    registry = jobfleet.Registry()
    release = asyncio.Event()

    @registry.handler("hold")
    async def hold(job: jobfleet.JobContext) -> str:
        await release.wait()
        return "held"

    @registry.handler("quick")
    async def quick(job: jobfleet.JobContext) -> str:
        return "quick"

    return registry, release


async def _in_flight(client: jobfleet.Client, worker: Worker, n: int) -> bool:
    w = (await client.workers()).get(worker.id)
    return w is not None and w.in_flight == n


async def test_a_drained_worker_finishes_its_jobs_claims_nothing_and_resumes_on_undrain(
    client: jobfleet.Client, run_worker: Callable[..., Worker]
) -> None:
    registry, release = holding()
    busy = run_worker(
        registry, queue={"concurrency": 2, "lease": 0.6}
    )  # several renewals while drained
    held = await client.enqueue_many([{"name": "hold"}] * 2)
    await until(lambda: _in_flight(client, busy, 2), what="two jobs on the busy worker")
    idle = run_worker(registry, queue={"concurrency": 2})
    await until(lambda: _in_flight(client, idle, 0), what="the idle worker to register")

    assert await client.drain_workers([busy.id, idle.id], ttl=60) == 2
    assert await client.drain_workers([busy.id], ttl=60) == 0  # a renewal, not a new drain
    # The idle worker waits for work in Redis: its own wake list tells it at once. (The busy
    # one has no free slot, so it makes no claim to be refused until a job ends.)
    await until(lambda: asyncio.sleep(0, idle.draining), what="the idle worker to learn it")
    workers = await client.workers()
    assert {(w.in_flight, w.draining) for w in workers.values()} == {(2, True), (0, True)}

    quick = await client.enqueue("quick")
    await asyncio.sleep(1.0)  # leases of 0.6 s renew meanwhile; nobody may take `quick`
    release.set()
    for job_id in held:
        info = await client.wait(job_id, timeout=30)
        assert (info.state, info.attempt) == (jobfleet.JobState.COMPLETED, 1)
    await until(lambda: _in_flight(client, busy, 0), what="the drained worker to settle")
    assert busy.draining
    # Both workers have called claim since (the completions went with one): still waiting.
    assert (await client.get(quick)).state is jobfleet.JobState.WAITING
    stats = await client.inspect()
    assert stats.recovered_total == 0  # leases were renewed all along

    assert await client.undrain_workers([idle.id]) == 1
    info = await client.wait(quick, timeout=30)
    assert info.state is jobfleet.JobState.COMPLETED
    assert (await client.get(quick)).state is jobfleet.JobState.COMPLETED
    assert not idle.draining
    workers = await client.workers()
    assert (workers[idle.id].draining, workers[busy.id].draining) == (False, True)


async def test_a_drain_lapses_after_its_ttl_unless_renewed(
    client: jobfleet.Client, run_worker: Callable[..., Worker]
) -> None:
    registry, _ = holding()
    worker = run_worker(registry)
    await until(lambda: _in_flight(client, worker, 0), what="the worker to register")
    await client.drain_workers([worker.id], ttl=0.5)
    await until(lambda: asyncio.sleep(0, worker.draining), what="the worker to learn it")
    job = await client.enqueue("quick")  # taken once the flag has lapsed
    info = await client.wait(job, timeout=30)
    assert info.state is jobfleet.JobState.COMPLETED
    assert not (await client.workers())[worker.id].draining


async def test_drain_flags_of_gone_workers_are_dropped(client: jobfleet.Client) -> None:
    await client.drain_workers(["ghost:1:abc"], ttl=60)
    eng = client.engine()
    assert await eng.conn.zcard(eng.keys.drain) == 1
    assert await client.workers() == {}
    assert await eng.conn.zcard(eng.keys.drain) == 0
    with pytest.raises(jobfleet.ConfigError):
        await client.drain_workers(["x"], ttl=0)


async def test_a_release_is_counted_on_the_job(
    client: jobfleet.Client, run_worker: Callable[..., Worker]
) -> None:
    """SIGTERM gives a running job back uncounted; the job hash still records that it was
    interrupted, so tests and operators can tell."""
    registry, _ = holding()
    worker = run_worker(registry)
    job = await client.enqueue("hold")
    await until(lambda: _in_flight(client, worker, 1), what="the job to start")
    worker.stop(grace=0)
    await until(lambda: asyncio.sleep(0, worker.counters.released == 1), what="the release")
    raw = await client.engine().job_hash(job)
    assert (raw["state"], raw["attempt"], raw["releases"]) == ("waiting", "0", "1")
