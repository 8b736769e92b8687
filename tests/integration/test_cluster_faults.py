"""Redis Cluster faults, each on a cluster of its own: a primary killed mid-drain, the queue's
slot resharded mid-drain, and a script meeting its slot half migrated. Handlers count their
runs in a separate single redis-server (`redis_url`)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jobfleet
import pytest
import redis
from jobfleet.connection import REDIS_DOWN
from jobfleet.engine import ClaimPolicy
from jobfleet.keys import QueueKeys, partition_name, partitions_key
from jobfleet.scripts import source
from redis.crc import key_slot
from redis_cluster import RedisCluster
from waiting import until

pytestmark = pytest.mark.slow

SLOT = key_slot(QueueKeys("q").prefix.encode())


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as c:
        yield c


@pytest.fixture
async def counter(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    conn = redis.asyncio.Redis.from_url(redis_url)
    yield conn
    await conn.aclose()


async def settled(client: jobfleet.Client, n: int) -> bool:
    try:
        return (await client.inspect()).completed == n
    except REDIS_DOWN:
        return False  # the cluster is still moving


async def check_all_done(
    client: jobfleet.Client, counter: redis.asyncio.Redis, ids: list[str]
) -> None:
    """Every job completed, each run at least once by a handler, nothing left anywhere."""
    stats = await client.inspect()
    assert (stats.waiting, stats.active, stats.delayed, stats.dead) == (0, 0, 0, 0)
    assert stats.completed == len(ids)
    for job_id in ids:
        assert (await client.get(job_id)).state is jobfleet.JobState.COMPLETED
        assert await counter.llen(f"runs:{job_id}") >= 1


async def moved_and_all_done(
    cluster: RedisCluster,
    slot: int,
    source: Any,
    target: Any,
    client: jobfleet.Client,
    counter: redis.asyncio.Redis,
    ids: list[str],
) -> None:
    """The slot is on `target` with no key left on `source`, and then every job completes."""
    assert cluster.owner(slot) is target
    with cluster.client(source) as direct:
        assert direct.execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 0
    await until(lambda: settled(client, len(ids)), timeout=180, what="every job after the reshard")
    await check_all_done(client, counter, ids)


def carried_on(workers: list[Any]) -> None:
    """Every worker still running, and it stops cleanly: none gave up on the cluster."""
    for w in workers:
        assert w.proc.poll() is None, w.output()
        assert w.terminate() == 0
        assert "Traceback" not in w.output()


async def test_primary_killed_mid_drain_its_replica_takes_over_and_no_job_is_lost(
    cluster, redis_url, counter, spawn_worker
):
    n = 2000
    old = cluster.owner(SLOT)
    env = {"TEST_REDIS_URL": redis_url}
    async with jobfleet.Client(cluster.url, queue="q") as client:
        ids = await client.enqueue_many([{"name": "record"}] * n)
        with cluster.client(old) as direct:
            assert direct.wait(1, 30_000) == 1  # the replica has every job before it takes over
        workers = [
            spawn_worker(cluster.url, env=env, queue={"lease": 2, "concurrency": 5})
            for _ in range(2)
        ]

        async def some_done() -> bool:
            return (await client.inspect()).completed_total >= 100

        await until(some_done, what="workers to get going")
        cluster.kill(old)
        new = await asyncio.to_thread(cluster.wait_failover, old, SLOT)
        # Whatever the promoted replica knows of scripts, make every client load them again.
        with cluster.client(new) as direct:
            direct.script_flush()

        await until(lambda: settled(client, n), timeout=180, what="every job after the failover")
        await check_all_done(client, counter, ids)

        # The same workers carry on, on the new primary.
        more = await client.enqueue_many([{"name": "record"}] * 50)
        await until(lambda: settled(client, n + 50), what="jobs enqueued after the failover")
        await check_all_done(client, counter, ids + more)
    with cluster.client(new) as direct:
        claim_sha = hashlib.sha1(source("claim").encode()).hexdigest()
        assert direct.script_exists(claim_sha) == [True]  # reloaded after NOSCRIPT
    carried_on(workers)


async def test_slot_of_the_busy_queue_resharded_mid_drain_loses_nothing_and_sticks_nowhere(
    cluster, redis_url, counter, spawn_worker
):
    n = 2000
    source = cluster.owner(SLOT)
    target = next(p for p in cluster.primaries() if p is not source)
    env = {"TEST_REDIS_URL": redis_url}
    async with jobfleet.Client(cluster.url, queue="q") as client:
        ids = await client.enqueue_many([{"name": "record"}] * n)
        workers = [
            spawn_worker(cluster.url, env=env, queue={"lease": 5, "concurrency": 5})
            for _ in range(2)
        ]

        async def some_done() -> bool:
            return (await client.inspect()).completed_total >= 100

        await until(some_done, what="workers to get going")
        # Keys move 10 at a time with pauses, while the workers run and a producer enqueues:
        # every script of the queue is refused (TRYAGAIN) until the slot has moved.
        migration = asyncio.create_task(
            asyncio.to_thread(cluster.migrate_slot, SLOT, target, batch=10, pause=0.01)
        )
        refused = 0
        while not migration.done():
            try:
                ids.append(await client.enqueue("record"))
            except REDIS_DOWN:
                refused += 1  # nothing was written: retry (the next round does)
            await asyncio.sleep(0.01)
        assert await migration > n  # the job hashes and the queue's keys all moved
        await moved_and_all_done(cluster, SLOT, source, target, client, counter, ids)
    carried_on(workers)


def _snapshot(node_port: int) -> dict[str, bytes | None]:
    """Every key of the queue's slot still on one node, serialized (a missing key would be
    answered with ASK: only the present ones are asked for)."""
    with redis.Redis(port=node_port) as conn:
        present = conn.execute_command("CLUSTER GETKEYSINSLOT", SLOT, 10_000)
        return {k: conn.dump(k) for k in present}


async def test_a_script_never_runs_halfway_while_its_slot_migrates(cluster):
    keys = QueueKeys("q")
    async with jobfleet.Client(cluster.url, queue="q") as client:
        ids = await client.enqueue_many([{"name": "record"}] * 5)
        source = cluster.owner(SLOT)
        target = next(p for p in cluster.primaries() if p is not source)
        src, dst = cluster.client(source), cluster.client(target)
        try:
            dst.execute_command("CLUSTER SETSLOT", SLOT, "IMPORTING", cluster.node_id(source))
            src.execute_command("CLUSTER SETSLOT", SLOT, "MIGRATING", cluster.node_id(target))
            moved = keys.job(ids[0])
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", moved)

            # The hazard, on this Redis: a script that declares only some of its keys runs,
            # writes, then fails at a key already moved, and its write stays.
            probe = "redis.call('HINCRBY', KEYS[1], 'probe', 1) return redis.call('GET', ARGV[1])"
            with pytest.raises(redis.ResponseError, match="non local key"):
                src.eval(probe, 1, keys.stats, moved)
            assert src.hget(keys.stats, "probe") == "1"
            src.hdel(keys.stats, "probe")

            # jobfleet's scripts declare `absent`, a key that never exists: Redis refuses them
            # before they start (TRYAGAIN), and nothing is written.
            before = _snapshot(source.port)
            calls = [
                client.inspect(),
                client.enqueue("record"),
                client.engine().claim(
                    token="t:1", n=5, worker_id="w", policy=_policy(), completions=()
                ),
                client.pause(),
            ]
            for call in calls:
                with pytest.raises(REDIS_DOWN):
                    await call
            assert _snapshot(source.port) == before
            with redis.Redis(port=target.port) as conn:
                there = conn.execute_command("CLUSTER GETKEYSINSLOT", SLOT, 10)
            assert moved not in before and there == [moved]
        finally:
            with contextlib.suppress(redis.RedisError):
                while rest := src.execute_command("CLUSTER GETKEYSINSLOT", SLOT, 100):
                    src.execute_command(
                        "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *rest
                    )
            for node in cluster.primaries():
                with cluster.client(node) as conn:
                    conn.execute_command("CLUSTER SETSLOT", SLOT, "NODE", cluster.node_id(target))
            src.close()
            dst.close()
        # Once the slot has moved, the same calls go through on the new owner.
        claimed = await client.engine().claim(token="t:2", n=10, worker_id="w", policy=_policy())
        assert sorted(j.id for j in claimed.jobs) == sorted(ids)


def _policy() -> ClaimPolicy:
    return ClaimPolicy(lease_ms=30_000, worker_ttl_ms=30_000, max_attempts=3, poison_after=3)


async def test_slot_of_a_busy_partition_resharded_mid_drain_loses_nothing(
    cluster, redis_url, counter, spawn_worker
):
    k, n = 3, 1500
    busy = key_slot(QueueKeys(partition_name("p", 1)).prefix.encode())
    source = cluster.owner(busy)
    target = next(p for p in cluster.primaries() if p is not source)
    env = {"TEST_REDIS_URL": redis_url}
    queue = {"name": "p", "partitions": k, "lease": 5, "concurrency": 5}
    workers = [spawn_worker(cluster.url, env=env, queue=queue) for _ in range(2)]
    async with jobfleet.Client(cluster.url, queue="p") as client:

        async def recorded() -> bool:
            return await client.conn.get(partitions_key("p")) is not None

        await until(recorded, what="the workers to record the partitions")
        client._partitions.clear()  # looked before the workers wrote it: read it again
        assert await client.partitions() == k
        ids = await client.enqueue_many([{"name": "record"}] * n)  # round robin: n / k each

        async def some_done() -> bool:
            return (await client.inspect()).completed_total >= 100

        await until(some_done, what="workers to get going")
        migration = asyncio.create_task(
            asyncio.to_thread(cluster.migrate_slot, busy, target, batch=10, pause=0.01)
        )
        while not migration.done():
            with contextlib.suppress(*REDIS_DOWN):  # the moving partition refuses; retry
                ids.append(await client.enqueue("record"))
            await asyncio.sleep(0.01)
        await migration
        await moved_and_all_done(cluster, busy, source, target, client, counter, ids)
        moved = (await client.engine(partition_name("p", 1)).inspect())["completed"]
        assert int(moved) >= n // k  # the resharded partition's jobs all ran, on its new owner
    carried_on(workers)
