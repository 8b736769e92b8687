"""One benchmark run of jobfleet: bulk enqueue, drain by one worker process, pickup latency."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    BENCH,
    LATENCY_GAP,
    N_JOBS,
    N_LATENCY,
    ServerMeter,
    emit,
    latency_summary,
    note,
    read_latencies,
    redis_url,
    sync_redis,
)
from jobfleet import Client

QUEUE = "bench"
STATS_KEY = f"jf:{{{QUEUE}}}:stats"


def spawn_worker(extra_env: dict[str, str] | None = None, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, **(extra_env or {}))
    cmd = [sys.executable, str(BENCH / "jf_worker.py"), "--queue", QUEUE, *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)


def stop_worker(proc: subprocess.Popen[str]) -> dict[str, int]:
    """SIGTERM (the worker drains and exits 0) and read its REPORT line."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    for line in out.splitlines():
        if line.startswith("REPORT "):
            report: dict[str, int] = json.loads(line[7:])
            return report
    raise RuntimeError(f"worker exited {proc.returncode} without a report")


async def wait_completed(conn: object, target: int, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while int(conn.hget(STATS_KEY, "completed_total") or 0) < target:  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {target} jobs completed in {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic()


def job_fields(conn: object, ids: list[str], fields: list[str]) -> list[list[str]]:
    rows: list[list[str]] = []
    for i in range(0, len(ids), 1000):
        pipe = conn.pipeline(transaction=False)  # type: ignore[attr-defined]
        for job_id in ids[i : i + 1000]:
            pipe.hmget(f"jf:{{{QUEUE}}}:job:{job_id}", fields)
        rows.extend(pipe.execute())
    return rows


async def run(profile: Path | None) -> dict[str, object]:
    conn = sync_redis()
    client = Client(redis_url(), queue=QUEUE)
    await client.enqueue("noop", {}, queue="warmup")  # loads the scripts (one-time cost)
    result: dict[str, object] = {"system": "jobfleet", "n": N_JOBS}

    # 1. Bulk enqueue: one enqueue_many call.
    jobs = [{"name": "noop", "payload": {"i": i}} for i in range(N_JOBS)]
    meter = ServerMeter(conn)
    rt0 = client.round_trips
    t0 = time.perf_counter()
    ids = await client.enqueue_many(jobs)
    elapsed = time.perf_counter() - t0
    cpu, cmds = meter.per_job(N_JOBS)
    result |= {
        "enqueue_per_s": round(N_JOBS / elapsed),
        "enqueue_round_trips_per_job": round((client.round_trips - rt0) / N_JOBS, 5),
        "enqueue_cpu_us_per_job": round(cpu, 2),
        "enqueue_cmds_per_job": round(cmds, 2),
    }
    note(f"jobfleet enqueue: {result['enqueue_per_s']}/s")

    # 2. Drain: one worker process, jobs already waiting.
    meter = ServerMeter(conn)
    t_spawn = time.monotonic()
    extra = ("--profile", str(profile)) if profile else ()
    worker = spawn_worker(None, *extra)
    t_done = await wait_completed(conn, N_JOBS)
    cpu, cmds = meter.per_job(N_JOBS)
    report = stop_worker(worker)
    rows = job_fields(conn, ids, ["started_at", "finished_at"])
    first = min(int(r[0]) for r in rows)
    last = max(int(r[1]) for r in rows)
    result |= {
        "drain_per_s": round(N_JOBS / ((last - first) / 1000)),
        "drain_wall_per_s": round(N_JOBS / (t_done - t_spawn)),
        "drain_round_trips_per_job": round(report["round_trips"] / N_JOBS, 4),
        "drain_cpu_us_per_job": round(cpu, 2),
        "drain_cmds_per_job": round(cmds, 2),
        "worker_claims": report["claims"],
    }
    note(f"jobfleet drain: {result['drain_per_s']}/s")
    if profile:
        await client.aclose()
        return result

    # 3. Pickup latency: an idle worker, one job every 10 ms.
    with tempfile.NamedTemporaryFile("r", suffix=".lat") as lat:
        worker = spawn_worker({"BENCH_LATENCY_FILE": lat.name})
        assert worker.stdout is not None
        while worker.stdout.readline().strip() != "READY":
            pass
        await asyncio.sleep(0.5)
        ping_ids, calls = [], []
        next_at = time.monotonic()
        for _ in range(N_LATENCY):
            t = time.time_ns()
            ping_ids.append(await client.enqueue("ping", {"t": t}))
            calls.append((time.time_ns() - t) / 1e6)
            next_at += LATENCY_GAP
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await wait_completed(conn, N_JOBS + N_LATENCY)
        stop_worker(worker)
        result |= latency_summary(read_latencies(Path(lat.name)))
        result["enqueue_call_p50_ms"] = latency_summary(calls)["latency_p50_ms"]
    rows = job_fields(conn, ping_ids, ["enqueued_at", "started_at"])
    redis_ms = [float(int(s) - int(e)) for e, s in rows]
    redis_lat = latency_summary(redis_ms)
    result["latency_redis_clock_p50_ms"] = redis_lat["latency_p50_ms"]
    result["latency_redis_clock_p99_ms"] = redis_lat["latency_p99_ms"]
    note(f"jobfleet latency p50 {result['latency_p50_ms']} ms p99 {result['latency_p99_ms']} ms")
    await client.aclose()
    return result


def main() -> None:
    profile = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    emit(asyncio.run(run(profile)))


if __name__ == "__main__":
    main()
