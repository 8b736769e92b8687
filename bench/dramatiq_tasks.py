"""Dramatiq actors for the benchmark (no-op and latency) and a middleware recording drain stamps."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

STAMPS_FILE = os.environ.get("BENCH_STAMPS_FILE", "")
ROUND_TRIPS = [0]  # redis-py calls made by this process (Dramatiq uses no pipelines)
_execute = redis.Redis.execute_command


def _counted(self: redis.Redis, *args: Any, **options: Any) -> Any:
    ROUND_TRIPS[0] += 1
    return _execute(self, *args, **options)


redis.Redis.execute_command = _counted  # type: ignore[method-assign]
LATENCY_FILE = os.environ.get("BENCH_LATENCY_FILE", os.devnull)


class Stamps(Middleware):
    """Wall-clock time of the first job start and the last job end; READY once booted."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        if STAMPS_FILE:
            Path(STAMPS_FILE + ".ready").write_text("READY")

    def before_process_message(self, broker: Any, message: Any) -> None:
        if self.first is None:
            self.first = time.time()

    def after_process_message(self, broker: Any, message: Any, **kwargs: Any) -> None:
        self.last = time.time()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        if STAMPS_FILE:
            stamps = {"first": self.first, "last": self.last, "round_trips": ROUND_TRIPS[0]}
            Path(STAMPS_FILE).write_text(json.dumps(stamps))


broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
broker.add_middleware(Stamps())
dramatiq.set_broker(broker)
_latency_out = open(LATENCY_FILE, "a", buffering=1)  # noqa: SIM115 - lives as long as the process


@dramatiq.actor(queue_name="bench")
def noop(i: int) -> None:
    """The drain phase's job: does nothing."""


@dramatiq.actor(queue_name="bench")
def ping(t: int) -> None:
    """The latency phase's job: enqueue-to-start time from the enqueuer's wall clock."""
    _latency_out.write(f"{(time.time_ns() - t) / 1e6:.3f}\n")
