"""Redis Sentinel: clients and workers find the master through Sentinels and follow a failover."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import jobfleet
import jobfleet.sentinel
import pytest
import redis
from jobfleet.connection import check_eviction_policy, connect
from jobfleet.scripts import source
from jobfleet.worker import Worker
from redis.exceptions import RedisError
from redis_server import RedisServer, SentinelServer, TLSFiles, free_port
from waiting import until

MASTER_PW = "master-pw-7f3a"
SENTINEL_PW = "sentinel-pw-91c2"


@dataclass
class Cluster:
    """A master, its replica and three Sentinels (quorum 2); the roles swap on failover."""

    servers: tuple[RedisServer, RedisServer]
    sentinels: list[SentinelServer]

    @property
    def url(self) -> str:
        # The first address has no Sentinel behind it: clients must move on to the next.
        nodes = [f"127.0.0.1:{free_port()}", *(s.address for s in self.sentinels)]
        return f"redis+sentinel://{','.join(nodes)}/mymaster/0"

    def master(self) -> RedisServer:
        port = self.sentinels[0].master_port()
        return next(s for s in self.servers if s.port == port)

    def replica(self) -> RedisServer:
        master = self.master()
        return next(s for s in self.servers if s is not master)

    def steady(self) -> bool:
        """The replica is in sync and every Sentinel sees it and the other Sentinels."""
        with redis.Redis(port=self.master().port, decode_responses=True) as conn:
            info = conn.info("replication")
        if info["role"] != "master" or info.get("slave0", {}).get("state") != "online":
            return False
        return all(s.sees(replicas=1, sentinels=2) for s in self.sentinels)


def is_replica(server: RedisServer) -> bool:
    with redis.Redis(port=server.port) as conn:
        return bool(conn.role()[0] == b"slave")


def sync(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """`until` polls coroutines; these checks are quick blocking calls to local servers."""

    async def run() -> bool:
        try:
            return check()
        except RedisError:
            return False

    return run


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with RedisServer() as master, RedisServer(replica_of=master) as replica:
        sentinels = [SentinelServer(master, quorum=2) for _ in range(3)]
        try:
            for s in sentinels:
                s.start()
            yield Cluster((master, replica), sentinels)
        finally:
            for s in sentinels:
                s.cleanup()


@pytest.fixture
async def sentinel_url(cluster: Cluster) -> str:
    """A clean database on whichever server is the master now, with its replica in sync."""
    await until(sync(cluster.steady), timeout=120, what="master, replica and Sentinels to settle")
    with redis.Redis(port=cluster.master().port) as conn:
        conn.flushall()
    return cluster.url


async def test_client_and_worker_find_the_master_through_sentinel(
    cluster, sentinel_url, spawn_worker
):
    async with jobfleet.Client(sentinel_url, queue="q") as client:
        assert await check_eviction_policy(client.conn) == "noeviction"
        ids = await client.enqueue_many([{"name": "nap", "payload": {"s": 0}}] * 200)
        with redis.Redis(port=cluster.master().port) as direct:
            assert direct.zcard("jf:{q}:ready") == 200
        worker = spawn_worker(sentinel_url)

        async def all_done() -> bool:
            return (await client.inspect()).completed == 200

        await until(all_done, what="the worker to drain the queue through Sentinel")
        assert (await client.get(ids[-1])).state is jobfleet.JobState.COMPLETED
        assert worker.terminate() == 0
        assert "Traceback" not in worker.output()


async def test_eviction_check_runs_against_the_master(cluster, sentinel_url):
    from test_bad_input import test_refuses_a_redis_that_may_evict_jobs

    async with jobfleet.Client(sentinel_url) as client:
        await test_refuses_a_redis_that_may_evict_jobs(client)
    with redis.Redis(port=cluster.master().port, decode_responses=True) as direct:
        assert direct.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"


async def test_a_write_refused_by_a_demoted_master_is_retried_on_the_new_one(cluster, sentinel_url):
    # The state a failover leaves a client in before it notices: its pool still names the
    # old master, whose connection is open and now answers READONLY. The retry must ask the
    # Sentinels, not reconnect to the same address (redis-py does, see sentinel.py).
    master, replica = cluster.master(), cluster.replica()
    async with jobfleet.Client(sentinel_url, queue="q") as client:
        pool = client.conn.connection_pool
        conn = await pool.get_connection()
        await conn.disconnect()
        conn.host, conn.port = "127.0.0.1", replica.port
        pool.master_address = (conn.host, conn.port)
        await conn.connect_check_health()
        await pool.release(conn)
        job_id = await client.enqueue("x", 1)
        assert (conn.host, conn.port) == ("127.0.0.1", master.port)
    with redis.Redis(port=master.port) as direct:
        assert direct.exists(f"jf:{{q}}:job:{job_id}")


@pytest.mark.slow
async def test_failover_mid_drain_loses_no_job(cluster, sentinel_url, spawn_worker):
    n = 3000
    old, new = cluster.master(), cluster.replica()
    async with jobfleet.Client(sentinel_url, queue="q") as client:
        ids = await client.enqueue_many([{"name": "nap", "payload": {"s": 0.05}}] * n)
        with redis.Redis(port=old.port) as direct:
            assert direct.wait(1, 30_000) == 1  # the replica has every job before it takes over
        workers = [
            spawn_worker(sentinel_url, queue={"lease": 2, "concurrency": 10}) for _ in range(2)
        ]

        async def some_done() -> bool:
            return (await client.inspect()).completed_total >= 100

        await until(some_done, what="workers to get going")
        cluster.sentinels[0].failover()
        await until(
            sync(lambda: cluster.sentinels[0].master_port() == new.port),
            what="Sentinel to promote the replica",
        )
        # The new master may not have our scripts: make sure, so every client must reload them.
        with redis.Redis(port=new.port) as direct:
            direct.script_flush()

        async def all_done() -> bool:
            try:
                return (await client.inspect()).completed == n
            except (RedisError, OSError):
                return False  # the client itself is moving to the new master

        await until(all_done, timeout=180, what="every job to complete after the failover")
        stats = await client.inspect()
        assert (stats.waiting, stats.active, stats.delayed, stats.dead) == (0, 0, 0, 0)
        states = {(await client.get(i)).state for i in ids}
        assert states == {jobfleet.JobState.COMPLETED}

        # The workers now claim from the new master: fresh jobs there get done.
        more = await client.enqueue_many([{"name": "nap", "payload": {"s": 0}}] * 50)

        async def more_done() -> bool:
            infos = await asyncio.gather(*(client.get(i) for i in more))
            return all(i.state is jobfleet.JobState.COMPLETED for i in infos)

        await until(more_done, what="jobs enqueued after the failover to complete")
    with redis.Redis(port=new.port) as direct:
        claim_sha = hashlib.sha1(source("claim").encode()).hexdigest()
        assert direct.script_exists(claim_sha) == [True]  # reloaded after NOSCRIPT
    await until(sync(lambda: is_replica(old)), what="the old master to become a replica")
    for w in workers:
        assert w.proc.poll() is None, w.output()
        assert w.terminate() == 0
        assert "Traceback" not in w.output()


@pytest.mark.slow
async def test_clients_that_miss_the_switch_reconnect_when_the_old_master_refuses_writes(
    cluster, sentinel_url, monkeypatch
):
    # Without asking the Sentinels, a client learns of the failover only when the demoted
    # master answers READONLY (or unblocks the worker's BLPOP): that must be a transient error
    # for the worker's claims, its wake-up connection and the client's writes alike.
    monkeypatch.setattr(jobfleet.sentinel, "FOLLOW_INTERVAL", float("inf"))
    old, new = cluster.master(), cluster.replica()
    registry = jobfleet.Registry()

    @registry.handler("nap")
    async def nap(job: jobfleet.JobContext) -> None:
        await asyncio.sleep(job.payload["s"])

    settings = jobfleet.WorkerSettings(
        redis_url=sentinel_url, http_port=None, queue={"name": "q", "lease": 2}
    )
    worker = Worker(settings, registry)
    running = asyncio.create_task(worker.run())
    try:
        async with jobfleet.Client(sentinel_url, queue="q") as client:

            async def done(ids: list[str]) -> bool:
                infos = [await client.get(i) for i in ids]
                return all(i.state is jobfleet.JobState.COMPLETED for i in infos)

            before = await client.enqueue_many([{"name": "nap", "payload": {"s": 0}}] * 20)
            await until(lambda: done(before), what="jobs before the failover")
            with redis.Redis(port=old.port) as direct:
                assert direct.wait(1, 30_000) == 1
            cluster.sentinels[0].failover()
            await until(sync(lambda: is_replica(old)), what="the old master to become a replica")
            # The client's connection still points at the old master: READONLY, reconnect, retry.
            after = await client.enqueue_many([{"name": "nap", "payload": {"s": 0}}] * 20)
            with redis.Redis(port=new.port) as direct:
                assert direct.exists(f"jf:{{q}}:job:{after[0]}")
            await until(lambda: done(after), what="the worker to take jobs from the new master")
        waker = [t for t in asyncio.all_tasks() if t.get_name() == "jobfleet-waker"]
        assert waker and not waker[0].done()  # it outlived the BLPOP the demotion cut off
    finally:
        worker.stop()
        await running


async def test_tls_to_sentinels_and_master(tmp_path):
    tls = TLSFiles.create(tmp_path)
    with (
        RedisServer(tls=tls) as master,
        SentinelServer(master, tls=tls) as sentinel,
    ):
        url = f"rediss+sentinel://127.0.0.1:{sentinel.tls_port}/mymaster"
        for query in ("?ssl_cert_reqs=none", f"?ssl_ca_certs={tls.cert}"):
            async with jobfleet.Client(url + query, queue="q") as client:
                await client.enqueue("x", query)
        with redis.Redis(port=master.port) as direct:
            assert direct.zcard("jf:{q}:ready") == 2
        # Verification is on by default: a certificate from an unknown CA is refused, plainly.
        async with jobfleet.Client(url, queue="q") as client:
            with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
                await client.inspect()


@dataclass
class Guarded:
    """A master and a Sentinel that both require a password."""

    master: RedisServer
    sentinel: SentinelServer

    def url(self, userinfo: str = "") -> str:
        return f"redis+sentinel://{userinfo}{self.sentinel.address}/mymaster"


@pytest.fixture(scope="module")
def guarded() -> Iterator[Guarded]:
    # Started open (the helper pings without a password), then locked.
    with RedisServer() as master:
        with redis.Redis(port=master.port) as conn:
            conn.config_set("requirepass", MASTER_PW)
        with SentinelServer(master, password=SENTINEL_PW, master_password=MASTER_PW) as sentinel:
            yield Guarded(master, sentinel)


@pytest.fixture
async def guarded_client(guarded: Guarded) -> AsyncIterator[Guarded]:
    yield guarded
    with redis.Redis(port=guarded.master.port, password=MASTER_PW) as conn:
        conn.flushall()


async def test_sentinel_and_master_passwords_from_the_environment(guarded_client, monkeypatch):
    monkeypatch.setenv("JOBFLEET_REDIS_SENTINEL_PASSWORD", SENTINEL_PW)
    monkeypatch.setenv("JOBFLEET_REDIS_PASSWORD", MASTER_PW)
    async with jobfleet.Client(guarded_client.url(), queue="q") as client:
        await client.enqueue("x", 1)
        assert (await client.inspect()).waiting == 1


async def test_passwords_as_arguments_win_over_the_environment(guarded_client, monkeypatch):
    monkeypatch.setenv("JOBFLEET_REDIS_SENTINEL_PASSWORD", "wrong-sentinel-pw")
    monkeypatch.setenv("JOBFLEET_REDIS_PASSWORD", "wrong-master-pw")
    url = guarded_client.url(f":{MASTER_PW}@")  # the master's password in the URL
    conn = connect(url, sentinel_password=SENTINEL_PW)
    async with jobfleet.Client(url, queue="q", connection=conn) as client:
        await client.enqueue("x", 1)
        assert (await client.inspect()).waiting == 1


@pytest.mark.parametrize(
    ("sentinel_password", "env", "message"),
    [
        (None, {"JOBFLEET_REDIS_SENTINEL_PASSWORD": SENTINEL_PW}, "must be called with the"),
        ("wrong-" + SENTINEL_PW, {}, "invalid username-password pair"),
    ],
    ids=["explicit-none-ignores-env", "wrong"],
)
async def test_missing_or_wrong_sentinel_password_is_a_clear_error(
    guarded_client, monkeypatch, sentinel_password, env, message
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    conn = connect(guarded_client.url(f":{MASTER_PW}@"), sentinel_password=sentinel_password)
    try:
        with pytest.raises(redis.ConnectionError) as err:
            await conn.ping()
    finally:
        await conn.aclose()
    text = str(err.value)
    assert "no Sentinel could name the master 'mymaster'" in text
    assert guarded_client.sentinel.address in text
    assert "AuthenticationError" in text and message in text
    assert "JOBFLEET_REDIS_SENTINEL_PASSWORD" in text
    assert SENTINEL_PW not in text and MASTER_PW not in text


async def test_worker_with_a_wrong_sentinel_password_keeps_trying_and_never_logs_it(
    guarded, spawn_worker
):
    env = {"JOBFLEET_REDIS_SENTINEL_PASSWORD": "not-" + SENTINEL_PW}
    worker = spawn_worker(guarded.url(f":{MASTER_PW}@"), env=env)

    async def complained() -> bool:
        return "no Sentinel could name the master 'mymaster'" in worker.output()

    await until(complained, what="the worker to report the Sentinel's refusal")
    assert worker.proc.poll() is None  # backing off, not exiting
    assert worker.terminate() == 0
    assert SENTINEL_PW not in worker.output() and MASTER_PW not in worker.output()


def test_cli_reports_a_wrong_sentinel_password_in_one_line(guarded):
    from test_cli import assert_one_line_error, cli

    url = guarded.url(f":{MASTER_PW}@")
    result = cli(
        "stats",
        redis_url=url,
        env={"JOBFLEET_REDIS_SENTINEL_PASSWORD": "not-" + SENTINEL_PW},
    )
    assert_one_line_error(result, 1, "cannot reach Redis at redis+sentinel://:***@")
    assert SENTINEL_PW not in result.stderr and MASTER_PW not in result.stderr
