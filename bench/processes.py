"""`jobfleet worker --processes N` against one process: drain of a CPU-bound 200 µs body.

One run per invocation (bench/run_one.py gives it a fresh redis-server): enqueue the jobs
into a paused queue, start `jobfleet worker --processes N`, wait until its N workers are
registered, resume, and time until every job is completed. Start-up is outside the window.
`bench/run.sh processes` runs N = 1 and N = 2 in ABBA order; RESULTS.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jobfleet
from common import N_JOBS, ServerMeter, redis_url, sync_redis, tree_cpu

QUEUE = "cpu"
# The worker's default unless BENCH_PROCESSES_CONCURRENCY says otherwise (RESULTS has both).
CONCURRENCY = int(os.environ.get("BENCH_PROCESSES_CONCURRENCY", "50"))
ENQUEUE_BATCH = 1000


def run(processes: int, jobs: int) -> dict[str, float | int]:
    url = redis_url()
    with jobfleet.SyncClient(url, queue=QUEUE) as client:
        client.pause()
        for start in range(0, jobs, ENQUEUE_BATCH):
            count = min(ENQUEUE_BATCH, jobs - start)
            client.enqueue_many([{"name": "cpu"}] * count)
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBFLEET_")}
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobfleet",
                "--log-level",
                "WARNING",
                "worker",
                "--redis-url",
                url,
                "--queue",
                QUEUE,
                "--handlers",
                "processes_jobs",
                "--concurrency",
                str(CONCURRENCY),
                "--processes",
                str(processes),
                "--http-port",
                "0",
            ],
            cwd=Path(__file__).parent,
            env=env,
        )
        try:
            deadline = time.monotonic() + 120
            while len(client.workers()) < processes:
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the workers did not start")
                time.sleep(0.05)
            meter, cpu0 = ServerMeter(sync_redis()), tree_cpu(worker.pid)
            t0 = time.perf_counter()
            client.resume()
            while client.inspect().completed_total < jobs:
                time.sleep(0.02)
            seconds = time.perf_counter() - t0
            worker_us = (tree_cpu(worker.pid) - cpu0) * 1e6 / jobs
            redis_us, _ = meter.per_job(jobs)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=120)
    return {
        "bench": "processes",
        "processes": processes,
        "concurrency": CONCURRENCY,
        "jobs": jobs,
        "body_us": 200,
        "seconds": round(seconds, 3),
        "jobs_per_s": round(jobs / seconds),
        # CPU per job of the worker processes (the supervisor's included) and of Redis:
        # what N processes can reach when they get the cores (2 cores / these).
        "worker_cpu_us": round(worker_us, 1),
        "redis_cpu_us": round(redis_us, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--processes", type=int, required=True)
    p.add_argument("--jobs", type=int, default=N_JOBS)
    args = p.parse_args()
    print(json.dumps(run(args.processes, args.jobs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
