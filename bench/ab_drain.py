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
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import RedisServer


def redis_cpu(conn: Any) -> float:
    """Seconds of CPU the Redis server has used (user + system), from INFO."""
    info = conn.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def process_cpu(pid: int) -> float:
    """Seconds of CPU process `pid` has used (user + system), from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one(
    worker_env: dict[str, str], make_jobs: Callable[[int], list[dict[str, Any]]] | None = None
) -> tuple[float, float, float, float]:
    """One run: (enqueue jobs/s, drain jobs/s, worker CPU µs/job, Redis CPU µs/job). The jobs
    are N no-op jobs, or what `make_jobs(N)` returns (bench/groups.py spreads them over
    groups)."""
    with RedisServer() as server:
        os.environ["BENCH_REDIS_URL"] = server.url
        import bench_jobfleet as b  # reads BENCH_REDIS_URL through common.redis_url()
        from jobfleet import Client

        conn = b.sync_redis()
        client = Client(server.url, queue=b.QUEUE)
        await client.enqueue("noop", {}, queue="warmup")
        if make_jobs is None:
            jobs = [{"name": "noop", "payload": {"i": i}} for i in range(b.N_JOBS)]
        else:
            jobs = make_jobs(b.N_JOBS)
        t0 = time.perf_counter()
        ids = await client.enqueue_many(jobs)
        enqueue = b.N_JOBS / (time.perf_counter() - t0)
        redis_before = redis_cpu(conn)
        worker = b.spawn_worker(worker_env)
        await b.wait_completed(conn, b.N_JOBS)
        # CPU counts hold up on a busy machine where rates do not: a worker waiting for a
        # core is slow but spends no more CPU. The worker's share includes its start-up (the
        # same for both trees of an A/B).
        worker_cpu = process_cpu(worker.pid)
        redis_drain = redis_cpu(conn) - redis_before
        b.stop_worker(worker)
        rows = b.job_fields(conn, ids, ["started_at", "finished_at"])
        first = min(int(r[0]) for r in rows)
        last = max(int(r[1]) for r in rows)
        await client.aclose()
        drain = b.N_JOBS / ((last - first) / 1000)
        per_job = 1e6 / b.N_JOBS
        return enqueue, drain, worker_cpu * per_job, redis_drain * per_job


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    env = dict(arg.split("=", 1) for arg in sys.argv[2:])
    results = [asyncio.run(one(env)) for _ in range(runs)]
    labels = (
        "enqueue jobs/s",
        "drain jobs/s",
        "worker CPU µs/job (with start-up)",
        "Redis CPU µs/job (drain)",
    )
    for i, label in enumerate(labels):
        values = [r[i] for r in results]
        shown = ", ".join(f"{v:,.1f}" if v < 100 else f"{v:,.0f}" for v in values)
        print(f"{label}: {shown}; median {statistics.median(values):,.1f}")


if __name__ == "__main__":
    main()
