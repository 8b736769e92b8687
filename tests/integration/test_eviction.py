"""Evicting Redis policies: allkeys-* always refused; volatile-* refused unless the user accepts
losing what carries a TTL (dedup keys, rate-limit windows, circuit state)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jobfleet
import pytest
import redis
from jobfleet.connection import check_eviction_policy
from redis_server import RedisServer

VOLATILE = ["volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"]
ALLKEYS = ["allkeys-lru", "allkeys-lfu", "allkeys-random"]
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as s:
        yield s


@pytest.fixture
def policy(server: RedisServer, request: pytest.FixtureRequest) -> Iterator[str]:
    with redis.Redis(port=server.port) as conn:
        conn.flushall()
        conn.config_set("maxmemory-policy", request.param)
        yield request.param
        conn.config_set("maxmemory-policy", "noeviction")


@pytest.mark.parametrize("policy", VOLATILE, indirect=True)
async def test_volatile_policies_need_the_opt_in(server: RedisServer, policy: str) -> None:
    async with jobfleet.Client(server.url) as client:
        with pytest.raises(jobfleet.UnsafeRedisError) as err:
            await check_eviction_policy(client.conn)
        message = str(err.value)
        assert f"maxmemory-policy is {policy!r}" in message
        for lost in ("dedup keys", "rate-limit windows", "circuit-breaker state"):
            assert lost in message
        assert "allow_volatile_eviction" in message and "noeviction" in message
        assert await check_eviction_policy(client.conn, allow_volatile=True) == policy


@pytest.mark.parametrize("policy", ALLKEYS, indirect=True)
async def test_allkeys_policies_are_refused_even_with_the_opt_in(
    server: RedisServer, policy: str
) -> None:
    async with jobfleet.Client(server.url) as client:
        for allow in (False, True):
            with pytest.raises(jobfleet.UnsafeRedisError, match="can evict jobs") as err:
                await check_eviction_policy(client.conn, allow_volatile=allow)
            assert "allow_volatile_eviction" not in str(err.value)


def worker(url: str, *flags: str, **env: str) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("JOBFLEET_")}
    full.update(JOBFLEET_REDIS_URL=url, TEST_REDIS_URL=url, **env)
    return subprocess.Popen(
        [sys.executable, "-m", "jobfleet", "worker", "-q", "q", "--handlers", "jobs", *flags],
        cwd=HERE,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("policy", ["volatile-lru"], indirect=True)
def test_worker_refuses_volatile_eviction_by_default(server: RedisServer, policy: str) -> None:
    proc = worker(server.url, "--http-port", "0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "allow_volatile_eviction" in lines[0], lines


@pytest.mark.parametrize("policy", ["allkeys-lru"], indirect=True)
def test_worker_refuses_allkeys_eviction_despite_the_opt_in(
    server: RedisServer, policy: str
) -> None:
    proc = worker(server.url, "--allow-volatile-eviction", "--http-port", "0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "maxmemory-policy is 'allkeys-lru'" in err


@pytest.mark.parametrize("policy", ["volatile-ttl"], indirect=True)
@pytest.mark.parametrize(
    ("flags", "env"),
    [(["--allow-volatile-eviction"], {}), ([], {"JOBFLEET_ALLOW_VOLATILE_EVICTION": "1"})],
    ids=["flag", "env"],
)
async def test_worker_runs_on_volatile_eviction_when_allowed(
    server: RedisServer, policy: str, flags: list[str], env: dict[str, str]
) -> None:
    async with jobfleet.Client(server.url, queue="q") as client:
        job_id = await client.enqueue("nap", {"s": 0})
        proc = worker(server.url, *flags, "--http-port", "0", **env)
        try:
            info = await client.wait(job_id, timeout=60)
        finally:
            proc.terminate()
            _, err = await asyncio.to_thread(proc.communicate, timeout=60)
        assert info.state is jobfleet.JobState.COMPLETED, err
        assert proc.returncode == 0, err
