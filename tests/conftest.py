"""Shared fixtures: a real redis-server per session, flushed between tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import jobfleet
import pytest
import redis
from redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A clean database on the shared server."""
    conn = redis.Redis(port=redis_server.port)
    conn.flushall()
    conn.close()
    return redis_server.url


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    """A private server with AOF on (fsync always), for restart tests."""
    with RedisServer(appendonly=True) as server:
        yield server


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[jobfleet.Client]:
    c = jobfleet.Client(redis_url, queue="q")
    yield c
    await c.aclose()


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's shell may export JOBFLEET_*; tests must not depend on it.
    for name in list(os.environ):
        if name.startswith("JOBFLEET_"):
            monkeypatch.delenv(name)
