"""Redis Cluster: the client, workers (in-process and real processes), cron and the admin API
on a real cluster of 3 primaries and 3 replicas with a password; handlers count their runs in
a separate single redis-server (`redis_url`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import jobfleet
import pytest
import redis
from admin_harness import Tokens, start
from jobfleet.admin.app import create_app
from jobfleet.admin.auth import TokenStore
from jobfleet.connection import check_eviction_policy, connect
from jobfleet.keys import QueueKeys
from jobfleet.worker import Worker
from leaks import chain_text, leaked
from redis.crc import key_slot
from redis_cluster import RedisCluster
from redis_server import TLSFiles
from waiting import until

PASSWORD = "qzx7-Hv-5e1d"  # no 3 letters of it in any message


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster(password=PASSWORD) as c:
        yield c


@pytest.fixture
def cluster_url(cluster: RedisCluster) -> str:
    """The cluster's URL with its password, every primary emptied first."""
    cluster.flush()
    return f"redis+cluster://:{PASSWORD}@{cluster.address}/"


@pytest.fixture
async def cclient(cluster_url: str) -> AsyncIterator[jobfleet.Client]:
    async with jobfleet.Client(cluster_url, queue="q") as client:
        yield client


def slot_of(queue: str) -> int:
    return key_slot(QueueKeys(queue).prefix.encode())


def queue_on_each_primary(cluster: RedisCluster) -> list[str]:
    """One queue name per primary: their keys land on three different nodes."""
    found: dict[int, str] = {}
    for i in range(1000):
        name = f"q{i}"
        found.setdefault(cluster.owner(slot_of(name)).port, name)
        if len(found) == len(cluster.primaries()):
            return sorted(found.values())
    raise AssertionError("no spread of queue names over the primaries")


def counting(done: list[str]) -> jobfleet.Registry:
    registry = jobfleet.Registry()

    @registry.handler("count")
    async def count(job: jobfleet.JobContext) -> int:
        done.append(job.id)
        return len(done)

    return registry


async def test_drain_of_queues_on_every_primary_and_the_cross_queue_views(cluster, cluster_url):
    names = queue_on_each_primary(cluster)
    done: list[str] = []
    settings = [
        jobfleet.WorkerSettings(redis_url=cluster_url, http_port=None, queue={"name": n})
        for n in names
    ]
    workers = [Worker(s, counting(done)) for s in settings]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    async with jobfleet.Client(cluster_url, queue=names[0]) as client:
        try:
            ids = []
            for name in names:  # 1200 each: several enqueue chunks in one cluster pipeline
                ids += await client.enqueue_many([{"name": "count"}] * 1200, queue=name)

            async def drained() -> bool:
                return len(done) >= len(ids)

            await until(drained, what="every queue to drain")
            # Idle workers wait on their queue's node: a new job wakes one at once.
            late = [await client.enqueue("count", queue=n) for n in names]
            await until(lambda: asyncio.sleep(0, len(done) == len(ids) + 3), what="late jobs")
            assert sorted(done) == sorted(ids + late)  # each exactly once

            async def recorded() -> bool:  # outcomes travel with a worker's later call
                return all(s.completed == 1201 for s in await client.queues())

            await until(recorded, what="every outcome recorded")

            stats = {s.queue: s for s in await client.queues()}
            assert sorted(stats) == names
            assert {s.completed for s in stats.values()} == {1201}
            assert {(s.waiting, s.active, s.workers) for s in stats.values()} == {(0, 0, 1)}
        finally:
            for w in workers:
                w.stop()
            await asyncio.gather(*tasks)
        # obliterate's SCAN spans the primaries; the queue's keys were on one of them.
        assert await client.obliterate(queue=names[1]) > 1201
        assert [s.queue for s in await client.queues()] == [names[0], names[2]]
        for node in cluster.primaries():
            with cluster.client(node) as conn:
                assert not list(conn.scan_iter(match=QueueKeys(names[1]).pattern()))


async def test_retries_then_dead_letters_and_replay(cclient, cluster_url):
    attempts: dict[str, int] = {}
    fixed = False
    registry = jobfleet.Registry()

    @registry.handler("flaky")
    async def flaky(job: jobfleet.JobContext) -> str:
        attempts[job.id] = job.attempt
        if not fixed:
            raise RuntimeError("not yet")
        return "ok"

    worker = Worker(
        jobfleet.WorkerSettings(
            redis_url=cluster_url,
            http_port=None,
            queue={"name": "q", "max_attempts": 3, "backoff": {"base": 0.01, "cap": 0.02}},
        ),
        registry,
    )
    task = asyncio.create_task(worker.run())
    try:
        ids = await cclient.enqueue_many([{"name": "flaky"}] * 20)

        async def all_dead() -> bool:
            return (await cclient.inspect()).dead == 20

        await until(all_dead, what="20 dead letters")
        assert set(attempts.values()) == {3}
        info = await cclient.get(ids[0])
        assert info.state is jobfleet.JobState.DEAD and info.attempt == 3
        fixed = True
        assert await cclient.dead_letters().replay(ids) == 20
        for job_id in ids:
            assert (await cclient.wait(job_id, timeout=60)).state is jobfleet.JobState.COMPLETED
        assert set(attempts.values()) == {1}  # a replay starts a fresh attempt budget
    finally:
        worker.stop()
        await task


async def runs(conn: redis.asyncio.Redis, job_id: str) -> list[tuple[int, int]]:
    raw = await conn.lrange(f"runs:{job_id}", 0, -1)
    return [tuple(map(int, r.split(b":"))) for r in raw]


@pytest.fixture
async def counter(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """The single redis-server the handlers of tests/integration/jobs.py record runs in."""
    conn = redis.asyncio.Redis.from_url(redis_url)
    yield conn
    await conn.aclose()


async def test_sigkill_of_a_worker_runs_its_jobs_again_elsewhere(
    cclient, cluster_url, redis_url, counter, spawn_worker
):
    env = {"TEST_REDIS_URL": redis_url}
    queue = {"concurrency": 20, "lease": 1.0}
    first = spawn_worker(cluster_url, env={**env, "TEST_HANG": "1"}, queue=queue)
    ids = await cclient.enqueue_many([{"name": "slow-unless-released"}] * 20)

    async def all_started() -> bool:
        return all([await counter.llen(f"runs:{i}") for i in ids])

    await until(all_started, what="20 jobs in flight on the first worker")
    first.kill()
    second = spawn_worker(cluster_url, env=env, queue=queue)

    async def all_done() -> bool:
        return (await cclient.inspect()).completed == 20

    await until(all_done, what="the second worker to finish the jobs")
    for job_id in ids:
        assert await runs(counter, job_id) == [(first.pid, 1), (second.pid, 2)]
    assert (await cclient.inspect()).recovered_total == 20
    assert second.terminate() == 0
    assert "Traceback" not in second.output()


async def test_sigterm_finishes_what_it_can_and_releases_the_rest(
    cclient, cluster_url, redis_url, counter, spawn_worker
):
    env = {"TEST_REDIS_URL": redis_url}
    worker = spawn_worker(
        cluster_url, env=env, grace_period=2.0, shutdown_margin=0.5, queue={"concurrency": 40}
    )
    quick = await cclient.enqueue_many([{"name": "sleep", "payload": {"s": 0.2}}] * 20)
    slow = await cclient.enqueue_many([{"name": "sleep", "payload": {"s": 600}}] * 20)

    async def all_started() -> bool:
        return all([await counter.llen(f"runs:{i}") for i in quick + slow])

    await until(all_started, what="40 jobs in flight")
    assert worker.terminate() == 0, worker.output()
    for job_id in quick:
        assert (await cclient.get(job_id)).state is jobfleet.JobState.COMPLETED
    for job_id in slow:
        info = await cclient.get(job_id)
        assert info.state is jobfleet.JobState.WAITING and info.attempt == 0
    stats = await cclient.inspect()
    assert (stats.active, stats.waiting, stats.workers) == (0, 20, 0)


async def test_worker_processes_run_the_schedules_one_job_per_tick(
    cclient, cluster_url, redis_url, spawn_worker
):
    schedule = {"name": "heartbeat", "cron": "* * * * * *", "job": "record"}
    env = {"TEST_REDIS_URL": redis_url}
    workers = [spawn_worker(cluster_url, env=env, queue={"schedules": [schedule]}) for _ in "abc"]

    async def enough() -> bool:
        return (await cclient.inspect()).completed >= 5

    await until(enough, what="five ticks to run")
    for w in workers:
        assert w.terminate() == 0, w.output()
    prefix = cclient.engine().keys.job("cron:heartbeat:")
    ticks = sorted([int(k.rsplit(":", 1)[1]) async for k in cclient.conn.scan_iter(prefix + "*")])
    assert len(ticks) >= 5
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))  # consecutive, none missing
    raw = await cclient.conn.hget(cclient.engine().keys.stats, "enqueued_total")
    assert int(raw) == len(ticks)  # three schedulers raced for every tick: one job each
    assert [s.queue for s in await cclient.queues()] == ["q"]


async def test_admin_api_reads_a_cluster(cclient, cluster_url, tmp_path: Path):
    tokens = Tokens()
    (tmp_path / "tokens").write_text(tokens.file_text())
    ids = await cclient.enqueue_many([{"name": "count"}] * 3)
    await cclient.enqueue("count", queue="other")
    runner, url = await start(create_app(cclient, TokenStore(tmp_path / "tokens")))
    try:
        async with aiohttp.ClientSession(headers=tokens.header("viewer")) as session:
            async with session.get(url + "/api/v1/queues") as resp:
                assert resp.status == 200
                body = await resp.json()
            text = str(body)
            assert "'q'" in text and "'other'" in text
            async with session.get(url + "/api/v1/queues/q/jobs?state=waiting") as resp:
                assert resp.status == 200
                listed = str(await resp.json())
            assert all(i in listed for i in ids)
            async with session.get(url + f"/api/v1/queues/q/jobs/{ids[0]}") as resp:
                assert resp.status == 200
                assert (await resp.json())["state"] == "waiting"
    finally:
        await runner.cleanup()


async def test_password_from_the_environment_and_a_wrong_one_never_shown(
    cluster, monkeypatch, tmp_path
):
    cluster.flush()
    monkeypatch.setenv("JOBFLEET_REDIS_PASSWORD", PASSWORD)
    async with jobfleet.Client(cluster.url, queue="q") as client:
        await client.enqueue("count")
        assert (await client.inspect()).waiting == 1
    monkeypatch.delenv("JOBFLEET_REDIS_PASSWORD")
    wrong = "wrong-pw-a8c3e1"
    async with jobfleet.Client(f"redis+cluster://:{wrong}@{cluster.address}/", queue="q") as client:
        with pytest.raises(redis.ConnectionError) as caught:
            await client.inspect()
    assert not leaked(chain_text(caught.value), wrong)


def test_a_malformed_cluster_url_is_a_config_error_without_the_password():
    for url, problem in [
        ("redis+cluster://:s3cret-pw@/", "no cluster node"),
        ("redis+cluster://:s3cret-pw@a:1,b:x/", "cluster node 2 of 2: port"),
        ("redis+cluster://:s3cret-pw@a/3", "only database 0"),
        ("redis+cluster://:s3cret-pw@a/?ssl_certfile=c", r"ssl_\* options need rediss\+cluster"),
    ]:
        with pytest.raises(jobfleet.ConfigError, match=problem) as caught:
            jobfleet.connect(url)
        assert not leaked(chain_text(caught.value), "s3cret-pw")


async def test_the_operators_reader_on_a_cluster(cluster, cluster_url):
    """The operator's JobfleetReader: load, workers, drains and pause through the cluster;
    a wrong password is RedisUnavailable without the password."""
    from jobfleet_operator.scaler import JobfleetReader, RedisUnavailable

    plain = f"redis+cluster://{cluster.address}/"
    async with jobfleet.Client(cluster_url, queue="mail") as c:
        await c.enqueue_many([jobfleet.JobSpec(name="x", priority="critical") for _ in range(3)])
    reader = JobfleetReader(plain, PASSWORD, None, "mail", timeout=5.0)
    try:
        load = await reader.read()
        assert (load.waiting, load.in_flight, load.paused) == (3, 0, False)
        assert load.waiting_by_priority["critical"] == 3
        await reader.set_paused(True)
        assert (await reader.read()).paused
        assert await reader.workers() == []
    finally:
        await reader.aclose()
    wrong = JobfleetReader(plain, "wrong-pw-77d1", None, "mail", timeout=5.0)
    try:
        with pytest.raises(RedisUnavailable) as caught:
            await wrong.read()
        assert not leaked(chain_text(caught.value), "wrong-pw-77d1")
        assert not leaked(chain_text(caught.value), PASSWORD)
    finally:
        await wrong.aclose()


async def test_tls_to_every_node(tmp_path):
    """rediss+cluster://: TLS to the seed nodes and to every node they tell of."""
    with RedisCluster(primaries=3, replicas=0, tls=TLSFiles.create(tmp_path)) as tls_cluster:
        names = queue_on_each_primary(tls_cluster)
        async with jobfleet.Client(tls_cluster.tls_url, queue=names[0]) as client:
            for name in names:
                await client.enqueue("count", queue=name)
            stats = await client.queues()
            assert [(s.queue, s.waiting) for s in stats] == [(n, 1) for n in names]
            nodes = client.conn.get_nodes()  # type: ignore[attr-defined]
            assert {n.port for n in nodes} == {n.tls_port for n in tls_cluster.nodes}


async def test_the_eviction_check_asks_every_primary(cluster, cluster_url):
    conn = connect(cluster_url)
    last = cluster.primaries()[-1]
    try:
        assert await check_eviction_policy(conn) == "noeviction"
        with cluster.client(last) as direct:
            direct.config_set("maxmemory-policy", "allkeys-lru")
        with pytest.raises(jobfleet.UnsafeRedisError, match="allkeys-lru"):
            await check_eviction_policy(conn)
    finally:
        with cluster.client(last) as direct:
            direct.config_set("maxmemory-policy", "noeviction")
        await conn.aclose()
