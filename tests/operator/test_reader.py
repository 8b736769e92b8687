"""The operator's view of a queue through jobfleet's Client, against a real redis-server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import jobfleet
import pytest
import redis
from jobfleet_operator.scaler import JobfleetReader, RedisUnavailable

sys.path.insert(0, str(Path(__file__).parents[1]))
from redis_server import RedisServer, free_port

PASSWORD = "op-s3cret-pw"


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
    reader = JobfleetReader(redis_url, None, "mail", timeout=2.0)
    try:
        load = await reader.read()
    finally:
        await reader.aclose()
    assert (load.waiting, load.in_flight, load.held, load.paused) == (4, 0, 0, False)
    assert load.waiting_by_priority["critical"] == 3
    assert load.oldest_wait >= 0


async def test_pause_and_resume(redis_url: str) -> None:
    reader = JobfleetReader(redis_url, None, "mail", timeout=2.0)
    try:
        await reader.set_paused(True)
        assert (await reader.read()).paused
        await reader.set_paused(False)
        assert not (await reader.read()).paused
    finally:
        await reader.aclose()


async def test_password_from_the_secret(protected: RedisServer) -> None:
    reader = JobfleetReader(protected.url, PASSWORD, "mail", timeout=2.0)
    try:
        assert (await reader.read()).waiting == 0
    finally:
        await reader.aclose()


async def test_wrong_password_is_unavailable_and_not_echoed(protected: RedisServer) -> None:
    reader = JobfleetReader(protected.url, "wrong-" + PASSWORD, "mail", timeout=2.0)
    try:
        with pytest.raises(RedisUnavailable) as err:
            await reader.read()
    finally:
        await reader.aclose()
    assert PASSWORD not in str(err.value)


async def test_redis_down_is_unavailable_quickly() -> None:
    reader = JobfleetReader(f"redis://127.0.0.1:{free_port()}/0", None, "mail", timeout=1.0)
    try:
        with pytest.raises(RedisUnavailable) as err:
            await reader.read()
    finally:
        await reader.aclose()
    assert "127.0.0.1" in str(err.value)


async def test_password_inside_a_secret_url_is_not_echoed(protected: RedisServer) -> None:
    url = protected.url.replace("redis://", "redis://:wrong-url-pw@")
    reader = JobfleetReader(url, None, "mail", timeout=2.0)
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
    reader = JobfleetReader(protected.url, None, "mail", timeout=2.0)
    try:
        with pytest.raises(RedisUnavailable):
            await reader.read()
    finally:
        await reader.aclose()
