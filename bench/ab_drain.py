"""Quick A/B of engine changes: N runs of bulk enqueue + one-worker drain, fresh redis-server each.

Usage: .venv/bin/python bench/ab_drain.py RUNS [ENV=VALUE ...]
Run it once with PYTHONPATH pointing at another checkout's worker/ to compare two versions;
ENV=VALUE pairs go to the worker process (e.g. BENCH_BATCH_SIZE=50). Not a recorded
benchmark: `make bench` is (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import RedisServer


async def one(worker_env: dict[str, str]) -> tuple[float, float]:
    with RedisServer() as server:
        os.environ["BENCH_REDIS_URL"] = server.url
        import bench_jobfleet as b  # reads BENCH_REDIS_URL through common.redis_url()
        from jobfleet import Client

        conn = b.sync_redis()
        client = Client(server.url, queue=b.QUEUE)
        await client.enqueue("noop", {}, queue="warmup")
        jobs = [{"name": "noop", "payload": {"i": i}} for i in range(b.N_JOBS)]
        t0 = time.perf_counter()
        ids = await client.enqueue_many(jobs)
        enqueue = b.N_JOBS / (time.perf_counter() - t0)
        worker = b.spawn_worker(worker_env)
        await b.wait_completed(conn, b.N_JOBS)
        b.stop_worker(worker)
        rows = b.job_fields(conn, ids, ["started_at", "finished_at"])
        first = min(int(r[0]) for r in rows)
        last = max(int(r[1]) for r in rows)
        await client.aclose()
        return enqueue, b.N_JOBS / ((last - first) / 1000)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    env = dict(arg.split("=", 1) for arg in sys.argv[2:])
    results = [asyncio.run(one(env)) for _ in range(runs)]
    for label, i in (("enqueue", 0), ("drain", 1)):
        values = [r[i] for r in results]
        shown = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{label} jobs/s: {shown}; median {statistics.median(values):,.0f}")


if __name__ == "__main__":
    main()
