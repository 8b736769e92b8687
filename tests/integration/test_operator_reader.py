"""The operator's view of a queue through jobfleet's Client, against a real redis-server.

(What the operator makes of a URL before any connection is in tests/operator/test_reader_urls.py.)
"""

from __future__ import annotations

from collections.abc import Iterator

import jobfleet
import pytest
import redis
import redis.asyncio
from jobfleet_operator.scaler import JobfleetReader, RedisUnavailable
from leaks import leaked
from redis_server import RedisServer, SentinelServer, free_port

PASSWORD = "op-s3cret-pw"
SENTINEL_PASSWORD = "op-sentinel-s3cret"


@pytest.fixture(scope="module")
def protected() -> Iterator[RedisServer]:
    # Started open (the helper pings without a password), then locked.
    with RedisServer() as server:
        conn = redis.Redis(port=server.port)
        conn.config_set("requirepass", PASSWORD)
        conn.close()
        yield server


async def test_reads_the_load(redis_url: str) -> None:
    async with jobfleet.Client(redis_url, queue="mail") as c:
        await c.enqueue_many([jobfleet.JobSpec(name="x", priority="critical") for _ in range(3)])
        await c.enqueue("x")
    reader = JobfleetReader(redis_url, None, None, "mail", timeout=2.0)
    try:
        load = await reader.read()
    finally:
        await reader.aclose()
    assert (load.waiting, load.in_flight, load.held, load.paused) == (4, 0, 0, False)
    assert load.waiting_by_priority["critical"] == 3
    assert load.oldest_wait >= 0


async def test_pause_and_resume(redis_url: str) -> None:
    reader = JobfleetReader(redis_url, None, None, "mail", timeout=2.0)
    try:
        await reader.set_paused(True)
        assert (await reader.read()).paused
        await reader.set_paused(False)
        assert not (await reader.read()).paused
    finally:
        await reader.aclose()


async def test_drains_workers_through_the_client(redis_url: str) -> None:
    """The reader's drain calls are jobfleet's public ones, seen by a real Redis."""
    from jobfleet.engine import ClaimPolicy, Engine

    policy = ClaimPolicy(lease_ms=30_000, worker_ttl_ms=30_000, max_attempts=3, poison_after=3)
    reader = JobfleetReader(redis_url, None, None, "mail", timeout=2.0)
    engine = Engine(redis.asyncio.Redis.from_url(redis_url, decode_responses=True), "mail")
    try:
        await engine.claim(token="t", n=0, worker_id="pod-a:1:x", policy=policy)  # registers
        await reader.drain(["pod-a:1:x"], ttl=60)
        [w] = await reader.workers()
        assert (w.id, w.pod, w.in_flight, w.draining) == ("pod-a:1:x", "pod-a", 0, True)
        claim = await engine.claim(token="t2", n=1, worker_id="pod-a:1:x", policy=policy)
        assert claim.draining
        await reader.undrain(["pod-a:1:x"])
        assert not (await reader.workers())[0].draining
    finally:
        await reader.aclose()
        await engine.conn.aclose()


async def test_password_from_the_secret(protected: RedisServer) -> None:
    reader = JobfleetReader(protected.url, PASSWORD, None, "mail", timeout=2.0)
    try:
        assert (await reader.read()).waiting == 0
    finally:
        await reader.aclose()


async def test_wrong_password_is_unavailable_and_not_echoed(protected: RedisServer) -> None:
    reader = JobfleetReader(protected.url, "wrong-" + PASSWORD, None, "mail", timeout=2.0)
    try:
        with pytest.raises(RedisUnavailable) as err:
            await reader.read()
    finally:
        await reader.aclose()
    assert PASSWORD not in str(err.value)


async def test_redis_down_is_unavailable_quickly() -> None:
    reader = JobfleetReader(f"redis://127.0.0.1:{free_port()}/0", None, None, "mail", timeout=1.0)
    try:
        with pytest.raises(RedisUnavailable) as err:
            await reader.read()
    finally:
        await reader.aclose()
    assert "127.0.0.1" in str(err.value)


async def test_password_inside_a_secret_url_is_not_echoed(protected: RedisServer) -> None:
    url = protected.url.replace("redis://", "redis://:wrong-url-pw@")
    reader = JobfleetReader(url, None, None, "mail", timeout=2.0)
    try:
        with pytest.raises(RedisUnavailable) as err:
            await reader.read()
    finally:
        await reader.aclose()
    assert "wrong-url-pw" not in str(err.value)


async def test_the_operators_own_password_is_never_sent_to_a_queues_redis(
    protected: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Queue author must not be able to collect the operator's credentials with a URL.
    monkeypatch.setenv("JOBFLEET_REDIS_PASSWORD", PASSWORD)
    reader = JobfleetReader(protected.url, None, None, "mail", timeout=2.0)
    try:
        with pytest.raises(RedisUnavailable):
            await reader.read()
    finally:
        await reader.aclose()


@pytest.fixture(scope="module")
def sentinel_url() -> Iterator[str]:
    """A master behind one Sentinel that requires its own password."""
    with RedisServer() as master, SentinelServer(master, password=SENTINEL_PASSWORD) as sentinel:
        yield f"redis+sentinel://127.0.0.1:{free_port()},{sentinel.address}/mymaster/0"


async def test_reads_through_sentinel_with_its_password(sentinel_url: str) -> None:
    reader = JobfleetReader(sentinel_url, None, SENTINEL_PASSWORD, "mail", timeout=2.0)
    try:
        assert (await reader.read()).waiting == 0
        await reader.set_paused(True)
        assert (await reader.read()).paused
    finally:
        await reader.aclose()


@pytest.mark.parametrize("given", [None, "wrong-" + SENTINEL_PASSWORD])
async def test_sentinel_password_is_never_the_operators_own_nor_echoed(
    sentinel_url: str, given: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBFLEET_REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD)
    reader = JobfleetReader(sentinel_url, None, given, "mail", timeout=2.0)
    try:
        with pytest.raises(RedisUnavailable) as err:
            await reader.read()
    finally:
        await reader.aclose()
    assert "no Sentinel could name the master 'mymaster'" in str(err.value)
    assert SENTINEL_PASSWORD not in str(err.value)


# -- passwords with URL-special characters --------------------------------------------------

SPECIAL = ["/", "?", "#", "@", ":", "%", " "]


def special_password(char: str) -> str:
    return f"Hx7mQ2vL{char}pwRt5"


@pytest.fixture
def locked(request: pytest.FixtureRequest) -> Iterator[tuple[RedisServer, str]]:
    password = special_password(request.param)
    with RedisServer() as server:
        conn = redis.Redis(port=server.port)
        conn.config_set("requirepass", password)
        conn.close()
        yield server, password


@pytest.mark.parametrize("locked", SPECIAL, indirect=True)
async def test_percent_encoded_special_password_in_a_secret_url(
    locked: tuple[RedisServer, str],
) -> None:
    from urllib.parse import quote

    server, password = locked
    url = f"redis://:{quote(password, safe='')}@127.0.0.1:{server.port}/0"
    reader = JobfleetReader(url, None, None, "mail", timeout=2.0)
    try:
        assert (await reader.read()).waiting == 0
    finally:
        await reader.aclose()
    wrong = url.replace("Rt5@", "Rt6@")
    reader = JobfleetReader(wrong, None, None, "mail", timeout=2.0)
    try:
        with pytest.raises(RedisUnavailable) as err:
            await reader.read()
    finally:
        await reader.aclose()
    assert not leaked(str(err.value), password[:-1]), str(err.value)


async def test_a_partitioned_queue_is_read_as_one(redis_url: str) -> None:
    """The autoscaler's numbers are per logical queue: backlog summed over the partitions,
    and the fleet counted once (three workers, each registered on its own partition: no
    partition has seen more than one of them)."""
    from jobfleet.engine import ClaimPolicy, Engine
    from jobfleet.keys import partition_name, partitions_key

    conn = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    await conn.set(partitions_key("wide"), 3)  # what the queue's workers record at start
    async with jobfleet.Client(redis_url, queue="wide") as c:
        await c.enqueue_many([jobfleet.JobSpec(name="x") for _ in range(30)])  # round robin
    policy = ClaimPolicy(lease_ms=30_000, worker_ttl_ms=30_000, max_attempts=3, poison_after=3)
    engines = [Engine(conn, partition_name("wide", i)) for i in range(3)]
    reader = JobfleetReader(redis_url, None, None, "wide", timeout=2.0)
    try:
        for i, engine in enumerate(engines):
            claim = await engine.claim(token=f"t{i}", n=2, worker_id=f"pod-{i}:1:x", policy=policy)
            assert len(claim.jobs) == 2  # every partition holds a third of the backlog
        load = await reader.read()
        assert (load.waiting, load.in_flight, load.workers) == (24, 6, 3)
        assert await reader.partitions() == 3  # what the scaler's pending pause waits for
        await reader.set_paused(True)
        assert (await reader.read()).paused  # every partition paused
        await reader.set_paused(False)
        assert not (await reader.read()).paused
    finally:
        await reader.aclose()
        await conn.aclose()
