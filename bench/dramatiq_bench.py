"""One benchmark run of Dramatiq (peers venv): enqueue, drain by one worker process, latency."""

from __future__ import annotations

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
    sync_redis,
    wait_until,
)

THREADS = os.environ.get("BENCH_DRAMATIQ_THREADS", "8")  # dramatiq's default
MSGS_KEY = "dramatiq:bench.msgs"  # message bodies; an ack deletes the job's entry


def spawn_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        str(Path(sys.executable).parent / "dramatiq"),
        "dramatiq_tasks",
        "--processes",
        "1",
        "--threads",
        THREADS,
        "--queues",
        "bench",
    ]
    return subprocess.Popen(
        cmd,
        cwd=BENCH,
        env=dict(os.environ, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def main() -> None:
    sys.path.insert(0, str(BENCH))
    tmp = Path(tempfile.mkdtemp(prefix="bench-dramatiq-"))
    os.environ["BENCH_LATENCY_FILE"] = str(tmp / "lat")
    import dramatiq_tasks as tasks  # the broker reads BENCH_REDIS_URL at import

    conn = sync_redis()
    tasks.noop.send(-1)  # loads the scripts; drained with the rest
    result: dict[str, object] = {"system": "dramatiq", "n": N_JOBS, "threads": int(THREADS)}

    # 1. Enqueue: Dramatiq has no bulk API; one send() per job.
    meter = ServerMeter(conn)
    rt0 = tasks.ROUND_TRIPS[0]
    t0 = time.perf_counter()
    for i in range(N_JOBS):
        tasks.noop.send(i)
    elapsed = time.perf_counter() - t0
    round_trips = tasks.ROUND_TRIPS[0] - rt0
    cpu, cmds = meter.per_job(N_JOBS)
    result |= {
        "enqueue_per_s": round(N_JOBS / elapsed),
        "enqueue_round_trips_per_job": round(round_trips / N_JOBS, 5),
        "enqueue_cpu_us_per_job": round(cpu, 2),
        "enqueue_cmds_per_job": round(cmds, 2),
    }
    note(f"dramatiq enqueue: {result['enqueue_per_s']}/s")

    # 2. Drain: one worker process (dramatiq -p 1), jobs already waiting.
    stamps = tmp / "drain.json"
    meter = ServerMeter(conn)
    t_spawn = time.monotonic()
    worker = spawn_worker({"BENCH_STAMPS_FILE": str(stamps)})
    t_done = wait_until(lambda: conn.hlen(MSGS_KEY) == 0, 300, 0.01)
    cpu, cmds = meter.per_job(N_JOBS)
    stop_worker(worker)
    drain = json.loads(stamps.read_text())
    result |= {
        "drain_per_s": round(N_JOBS / (drain["last"] - drain["first"])),
        "drain_wall_per_s": round(N_JOBS / (t_done - t_spawn)),
        "drain_round_trips_per_job": round(drain["round_trips"] / N_JOBS, 4),
        "drain_cpu_us_per_job": round(cpu, 2),
        "drain_cmds_per_job": round(cmds, 2),
    }
    note(f"dramatiq drain: {result['drain_per_s']}/s")

    # 3. Pickup latency: an idle worker, one job every 10 ms.
    ready = tmp / "lat.json"
    worker = spawn_worker({"BENCH_STAMPS_FILE": str(ready)})
    wait_until(Path(str(ready) + ".ready").exists, 60)
    time.sleep(0.5)
    next_at = time.monotonic()
    for _ in range(N_LATENCY):
        tasks.ping.send(time.time_ns())
        next_at += LATENCY_GAP
        time.sleep(max(0.0, next_at - time.monotonic()))
    wait_until(lambda: conn.hlen(MSGS_KEY) == 0, 300, 0.01)
    stop_worker(worker)
    result |= latency_summary(read_latencies(tmp / "lat"))
    note(f"dramatiq latency p50 {result['latency_p50_ms']} ms p99 {result['latency_p99_ms']} ms")
    emit(result)


if __name__ == "__main__":
    main()
