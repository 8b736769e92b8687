"""Browser-tier fixtures: one redis-server and one admin server per module, workers per test,
and a record of each test's outcome (a failing test's pages are saved as screenshots)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dash_stack import FAILED, AdminServer, Workers
from redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_db() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def admin(redis_db: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminServer]:
    server = AdminServer(redis_db.url, tmp_path_factory.mktemp("admin"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def workers(redis_db: RedisServer, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(redis_db.url, tmp_path)
    yield started
    started.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report
