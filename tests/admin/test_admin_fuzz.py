"""Fuzzing the API from its own OpenAPI document (schemathesis): no 5xx, every response as
documented, and nothing written to Redis by a request that got a 4xx."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import jobfleet
import pytest
import redis
import schemathesis
from admin_harness import Tokens, start
from hypothesis import HealthCheck, settings
from jobfleet.admin.app import create_app
from jobfleet.admin.auth import TokenStore
from jobfleet.admin.openapi import document
from redis_server import RedisServer
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

schema = schemathesis.openapi.from_dict(document())
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class Api:
    """The admin app served from a thread of its own (schemathesis calls it synchronously)."""

    def __init__(self, redis_url: str, tokens_file: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.url = ""
        self.redis_url = redis_url
        self.tokens_file = tokens_file
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=60)

    async def _start(self) -> None:
        self.client = jobfleet.Client(self.redis_url, queue="q")
        self.runner, self.url = await start(create_app(self.client, TokenStore(self.tokens_file)))

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.client.aclose()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=60)


@pytest.fixture(scope="module")
def fuzz_tokens() -> Tokens:
    return Tokens()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, fuzz_tokens: Tokens) -> Iterator[Api]:
    path = tmp_path_factory.mktemp("fuzz") / "tokens"
    path.write_text(fuzz_tokens.file_text())
    with RedisServer(extra=["--enable-debug-command", "local"]) as server:
        seed = jobfleet.SyncClient(server.url, queue="q")
        seed.enqueue_many([{"name": "n", "payload": i} for i in range(3)])
        seed.enqueue("n", job_id="j")
        seed.close()
        api = Api(server.url, path)
        yield api
        api.close()


def snapshot(conn: redis.Redis) -> str:
    """A digest of every key and value (Redis's DEBUG DIGEST: one call, however many keys)."""
    return str(conn.execute_command("DEBUG", "DIGEST"))


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_fuzzed_requests(case, api: Api, fuzz_tokens: Tokens) -> None:
    with redis.Redis.from_url(api.redis_url) as conn:
        before = snapshot(conn)
        response = case.call(base_url=api.url, headers=fuzz_tokens.header("admin"), timeout=30)
        case.validate_response(response, checks=CHECKS)
        if 400 <= response.status_code < 500:
            assert snapshot(conn) == before, f"{case.method} {case.path} wrote on a 4xx"
