"""Sidecar mode: jobs delivered over HTTP to a real server, responses mapped to outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import jobfleet
import pytest
from aiohttp import web
from jobfleet.sidecar import SidecarHandlers
from jobfleet.worker import Worker


@pytest.fixture
async def sidecar() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A user's container, played by a small aiohttp app with one route per behaviour."""
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        body["headers"] = {k: v for k, v in request.headers.items() if k.startswith("X-Job")}
        seen.append(body)
        name = request.match_info["name"]
        if name == "ok":
            return web.json_response({"echo": body["payload"]})
        if name == "empty":
            return web.Response(status=204)
        if name == "throttled":
            if body["attempt"] == 1:
                return web.Response(status=429, text="slow down", headers={"Retry-After": "0.2"})
            return web.json_response("finally")
        if name == "invalid":
            return web.Response(status=422, text="missing field 'to'")
        if name == "crash":
            return web.Response(status=500, text="boom")
        return web.Response(status=404, text="no such job type")

    app = web.Application()
    app.router.add_post("/jobs/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_responses_map_to_complete_retry_and_dead_letter(client, redis_url, sidecar):
    url, seen = sidecar
    handlers = SidecarHandlers(url)
    settings = jobfleet.WorkerSettings(
        redis_url=redis_url,
        http_port=None,
        mode="sidecar",
        sidecar_url=url,
        queue=jobfleet.QueueSettings(
            name="q", max_attempts=2, backoff=jobfleet.Backoff(base=0.01, cap=0.01)
        ),
    )
    worker = Worker(settings, handlers)
    task = asyncio.create_task(worker.run())
    try:
        ok = await client.enqueue("ok", {"to": "ada"})
        empty = await client.enqueue("empty")
        throttled = await client.enqueue("throttled")
        invalid = await client.enqueue("invalid")
        crash = await client.enqueue("crash")
        unknown = await client.enqueue("unknown")

        info = await client.wait(ok, timeout=30)
        assert info.state is jobfleet.JobState.COMPLETED and info.result == {"echo": {"to": "ada"}}
        assert (await client.wait(empty, timeout=30)).result is None

        info = await client.wait(throttled, timeout=30)
        assert info.result == "finally" and info.attempt == 2
        assert info.started_at - info.run_at >= 0 and info.run_at - info.enqueued_at >= 0.2

        info = await client.wait(invalid, timeout=30)
        assert info.state is jobfleet.JobState.DEAD and info.attempt == 1
        assert "rejected the job (422): missing field 'to'" in info.dead_reason

        info = await client.wait(crash, timeout=30)
        assert info.state is jobfleet.JobState.DEAD and info.attempt == 2
        assert info.error.type == "SidecarError" and "(500): boom" in info.error.message

        info = await client.wait(unknown, timeout=30)
        assert info.state is jobfleet.JobState.DEAD and info.attempt == 1
        assert "no handler for 'unknown' (404)" in info.dead_reason

        first = next(s for s in seen if s["name"] == "ok")
        assert first["id"] == ok and first["queue"] == "q" and first["max_attempts"] == 2
        assert first["headers"]["X-Jobfleet-Job-Id"] == ok
        assert first["headers"]["X-Jobfleet-Attempt"] == "1"
    finally:
        worker.stop()
        await task
        await handlers.aclose()


async def test_unreachable_sidecar_is_retried_not_dead_lettered_at_once(client, redis_url):
    handlers = SidecarHandlers("http://127.0.0.1:1")
    settings = jobfleet.WorkerSettings(
        redis_url=redis_url,
        http_port=None,
        mode="sidecar",
        queue=jobfleet.QueueSettings(
            name="q", max_attempts=3, backoff=jobfleet.Backoff(base=0.01, cap=0.01)
        ),
    )
    worker = Worker(settings, handlers)
    task = asyncio.create_task(worker.run())
    try:
        info = await client.wait(await client.enqueue("x"), timeout=30)
        assert info.state is jobfleet.JobState.DEAD and info.attempt == 3
        assert "sidecar unreachable" in info.error.message
    finally:
        worker.stop()
        await task
        await handlers.aclose()
