"""Integration fixtures: workers as real subprocesses of `jobfleet worker`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import jobfleet
import pytest
from jobfleet.worker import Worker

HERE = Path(__file__).parent


class WorkerProcess:
    """A `jobfleet worker` subprocess running the handlers of tests/integration/jobs.py."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def spawn(
        redis_url: str,
        *,
        env: dict[str, str] | None = None,
        queue: dict[str, Any] | None = None,
        args: tuple[str, ...] = (),
        **settings: Any,
    ) -> WorkerProcess:
        queue_settings = {"name": "q", **(queue or {})}
        full = {
            "redis_url": redis_url,
            "handlers": ["jobs"],
            "http_port": None,
            "queue": queue_settings,
            **settings,
        }
        log = tmp_path / f"worker-{len(started)}.log"
        proc_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("JOBFLEET_")},
            "JOBFLEET_SETTINGS": json.dumps(full),
            "TEST_REDIS_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jobfleet", "worker", *args],
                cwd=HERE,
                env=proc_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(proc, log)
        started.append(worker)
        return worker

    yield spawn
    for w in started:
        if w.proc.poll() is None:
            w.kill()


@pytest.fixture
async def run_worker(redis_url: str) -> AsyncIterator[Callable[..., Worker]]:
    """Start in-process workers on queue "q"; all are stopped after the test."""
    started: list[tuple[Worker, asyncio.Task[Any]]] = []

    def start(registry: jobfleet.Registry, **settings: Any) -> Worker:
        queue = {"name": "q", **settings.pop("queue", {})}
        worker = Worker(
            jobfleet.WorkerSettings(
                redis_url=redis_url,
                http_port=settings.pop("http_port", None),
                queue=queue,
                **settings,
            ),
            registry,
        )
        started.append((worker, asyncio.create_task(worker.run())))
        return worker

    yield start
    for worker, task in started:
        worker.stop()
        await task
