"""Admin API fixtures: the real aiohttp app on a loopback port, over a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jobfleet
import pytest
from admin_harness import Server, Tokens, start
from jobfleet.admin.app import create_app
from jobfleet.admin.auth import TokenStore
from jobfleet.worker import Worker
from waiting import until


@pytest.fixture
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture
def tokens_file(tmp_path: Path, tokens: Tokens) -> Path:
    path = tmp_path / "tokens"
    path.write_text(tokens.file_text())
    return path


@pytest.fixture
async def server(redis_url: str, tokens: Tokens, tokens_file: Path) -> AsyncIterator[Server]:
    async with jobfleet.Client(redis_url, queue="q") as client:
        runner, url = await start(create_app(client, TokenStore(tokens_file)))
        async with aiohttp.ClientSession() as session:
            yield Server(url, tokens, session, client)
        await runner.cleanup()


@pytest.fixture
async def dead_letters(server: Server, redis_url: str) -> Callable[..., Awaitable[list[str]]]:
    """Makes dead letters of queue "q": jobs of names no handler serves, run by a real worker
    (it dead-letters an unknown name at once)."""

    async def make(*names: str, payload: Any = None) -> list[str]:
        ids = await server.client.enqueue_many([{"name": n, "payload": payload} for n in names])
        settings = jobfleet.WorkerSettings(redis_url=redis_url, http_port=None, queue={"name": "q"})
        worker = Worker(settings, jobfleet.Registry())
        task = asyncio.create_task(worker.run())

        async def all_dead() -> bool:
            return await server.client.dlq.count() >= len(ids)

        await until(all_dead, what="the jobs to be dead-lettered")
        worker.stop()
        await task
        return ids

    return make
