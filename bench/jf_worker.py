"""One jobfleet worker process for the benchmark: no-op and latency handlers, report at exit."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from jobfleet import Registry
from jobfleet.settings import QueueSettings, Retention, WorkerSettings
from jobfleet.worker import Worker

registry = Registry()
LATENCY_FILE = os.environ.get("BENCH_LATENCY_FILE", os.devnull)
_latency_out = open(LATENCY_FILE, "a", buffering=1)  # noqa: SIM115 - lives as long as the process


@registry.handler("noop")
async def noop(job: object) -> None:
    """The drain phase's job: does nothing."""


@registry.handler("ping")
async def ping(job: object) -> None:
    """The latency phase's job: enqueue-to-start time from the enqueuer's wall clock."""
    now = time.time_ns()
    _latency_out.write(f"{(now - job.payload['t']) / 1e6:.3f}\n")  # type: ignore[attr-defined]


def _logging() -> None:
    """BENCH_LOG_FORMAT=text|json: log as `jobfleet worker` does (INFO) to /dev/null, to
    measure what the lines cost; BENCH_LOG_JOBS picks the settings' log_jobs (default
    "failures": no line for a completed job). Unset, no logging is configured."""
    fmt = os.environ.get("BENCH_LOG_FORMAT")
    if not fmt:
        return
    import logging

    from jobfleet import joblog

    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - process lifetime
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    joblog.use_format(fmt)


def _overrides() -> dict[str, Any]:
    """BENCH_BATCH_SIZE / BENCH_LOG_JOBS, for trying other settings than the defaults."""
    out: dict[str, Any] = {}
    if "BENCH_LOG_JOBS" in os.environ:
        out["log_jobs"] = os.environ["BENCH_LOG_JOBS"]
    if "BENCH_BATCH_SIZE" in os.environ:
        out["batch_size"] = int(os.environ["BENCH_BATCH_SIZE"])
    return out


def bench_settings(queue: QueueSettings, **extra: Any) -> WorkerSettings:
    """The benchmark worker's settings: completed jobs are kept (as BullMQ does by default) so
    their timestamps can be read, no HTTP port."""
    queue = queue.model_copy(update={"retention": Retention(completed_count=10_000_000)})
    return WorkerSettings(
        redis_url=os.environ["BENCH_REDIS_URL"], queue=queue, http_port=None, **extra
    )


async def run_reporting(worker: Worker) -> dict[str, int]:
    """Run `worker` until SIGTERM, printing READY once its first claim is back; its report."""
    worker.install_signals()

    async def announce() -> None:
        while worker.counters.claims < 1:  # noqa: ASYNC110 - the Worker has no ready event
            await asyncio.sleep(0.005)
        print("READY", flush=True)

    ready = asyncio.create_task(announce())
    counters = await worker.run()
    ready.cancel()
    return {
        "round_trips": worker.engine.round_trips,
        "claims": counters.claims,
        "completed": counters.completed,
    }


async def serve(queue: str) -> dict[str, int]:
    _logging()
    settings = bench_settings(QueueSettings(name=queue), **_overrides())
    return await run_reporting(Worker(settings, registry))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queue", default="bench")
    parser.add_argument("--profile", type=Path, help="write cProfile stats of the process here")
    args = parser.parse_args()
    if args.profile:
        prof = cProfile.Profile()
        report = prof.runcall(asyncio.run, serve(args.queue))
        prof.dump_stats(args.profile)
    else:
        report = asyncio.run(serve(args.queue))
    print("REPORT " + json.dumps(report), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
