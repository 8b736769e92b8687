"""One jobfleet worker process of `bench/run.sh bodies`, or the same body in a bare loop.

    bodies_worker.py --body redis --concurrency 10            # a Worker; REPORT at SIGTERM
    bodies_worker.py --body redis --concurrency 10 --bare N   # N bodies, no framework

BENCH_LOOP=uvloop runs either on uvloop's event loop instead of asyncio's; BENCH_PROFILE=FILE
writes a cProfile of the worker there.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import time
from typing import Any

import bodies_jobs
from jf_worker import bench_settings, run_reporting
from jobfleet import Registry, event_loop
from jobfleet.settings import QueueSettings
from jobfleet.worker import Worker

QUEUE = "bench"


async def serve(body_name: str, concurrency: int) -> dict[str, Any]:
    body, close = await bodies_jobs.make(body_name, concurrency)
    await bodies_jobs.warm(body, concurrency)
    registry = Registry()

    @registry.handler("body")
    async def run_body(job: object) -> None:
        await body()

    settings = bench_settings(QueueSettings(name=QUEUE, concurrency=concurrency))
    report = await run_reporting(Worker(settings, registry))
    await close()
    return report


async def bare(body_name: str, concurrency: int, jobs: int) -> dict[str, Any]:
    body, close = await bodies_jobs.make(body_name, concurrency)
    await bodies_jobs.warm(body, concurrency)
    cpu0, t0 = time.process_time(), time.perf_counter()
    await bodies_jobs.bare(body, concurrency, jobs)
    cpu, seconds = time.process_time() - cpu0, time.perf_counter() - t0
    await close()
    return {"cpu_us_per_job": round(cpu * 1e6 / jobs, 2), "jobs_per_s": round(jobs / seconds)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--body", required=True, choices=bodies_jobs.BODIES)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--bare", type=int, metavar="JOBS", help="run JOBS bodies with no framework")
    args = p.parse_args()
    # The worker's own choice of loop (jobfleet.event_loop), as `jobfleet worker --event-loop`.
    factory = event_loop.loop_factory(os.environ.get("BENCH_LOOP", "asyncio"))
    with asyncio.Runner(loop_factory=factory) as runner:
        if args.bare:
            print("BARE " + json.dumps(runner.run(bare(args.body, args.concurrency, args.bare))))
        elif os.environ.get("BENCH_PROFILE"):
            prof = cProfile.Profile()
            report = prof.runcall(runner.run, serve(args.body, args.concurrency))
            prof.dump_stats(os.environ["BENCH_PROFILE"])
            print("REPORT " + json.dumps(report))
        else:
            print("REPORT " + json.dumps(runner.run(serve(args.body, args.concurrency))))


if __name__ == "__main__":
    main()
