"""One run of `bench/run.sh bodies` for jobfleet: drain N jobs of one body at one concurrency.

    bodies_jobfleet.py BODY CONCURRENCY     (BENCH_REDIS_URL: a fresh redis-server, run_one.py)

The jobs wait in a paused queue while the worker starts (bench/bodies_worker.py) and opens its
body's connections; once it is idle the queue is resumed and the drain timed until every job
is completed (start-up outside the window). Worker CPU per job is its process's user + system
time over the window (/proc); the handler's share is the same body run as many times at the
same concurrency in a bare asyncio loop (bodies_worker.py --bare), the framework's the rest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import ServerMeter, emit, note, redis_url, sync_redis
from jobfleet import SyncClient

BENCH = Path(__file__).resolve().parent
N_JOBS = int(os.environ.get("BENCH_BODY_JOBS", "10000"))
QUEUE = "bench"
STATS_KEY = f"jf:{{{QUEUE}}}:stats"
POLL = 0.005
TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) of process `pid`, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def worker_cmd(body: str, concurrency: int, *extra: str) -> list[str]:
    script = str(BENCH / "bodies_worker.py")
    return [sys.executable, script, "--body", body, "--concurrency", str(concurrency), *extra]


def run(body: str, concurrency: int) -> dict[str, object]:
    conn = sync_redis()
    client = SyncClient(redis_url(), queue=QUEUE)
    client.pause()
    for start in range(0, N_JOBS, 5000):
        count = min(5000, N_JOBS - start)
        client.enqueue_many([{"name": "body", "payload": {"i": i}} for i in range(count)])
    worker = subprocess.Popen(worker_cmd(body, concurrency), stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    while worker.stdout.readline().strip() != "READY":
        if worker.poll() is not None:
            raise RuntimeError("the worker exited before it was ready")
    meter, cpu0 = ServerMeter(conn), process_cpu(worker.pid)
    t0 = time.perf_counter()
    client.resume()
    deadline = time.monotonic() + 600
    while int(conn.hget(STATS_KEY, "completed_total") or 0) < N_JOBS:
        if time.monotonic() > deadline:
            raise TimeoutError("the drain did not finish")
        time.sleep(POLL)
    seconds = time.perf_counter() - t0
    worker_us = (process_cpu(worker.pid) - cpu0) * 1e6 / N_JOBS
    redis_us, cmds = meter.per_job(N_JOBS)
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=120)
    report = json.loads(next(ln for ln in out.splitlines() if ln.startswith("REPORT "))[7:])
    client.close()
    bare_out = subprocess.run(
        worker_cmd(body, concurrency, "--bare", str(N_JOBS)),
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    handler = json.loads(next(ln for ln in bare_out.splitlines() if ln.startswith("BARE "))[5:])
    result: dict[str, object] = {
        "system": "jobfleet",
        "loop": os.environ.get("BENCH_LOOP", "asyncio"),
        "body": body,
        "concurrency": concurrency,
        "n": N_JOBS,
        "jobs_per_s": round(N_JOBS / seconds),
        "worker_cpu_us": round(worker_us, 1),
        "handler_cpu_us": handler["cpu_us_per_job"],
        "framework_cpu_us": round(worker_us - handler["cpu_us_per_job"], 1),
        "bare_jobs_per_s": handler["jobs_per_s"],
        "redis_cpu_us": round(redis_us, 1),
        "redis_cmds_per_job": round(cmds, 2),
        "claims_per_job": round(report["claims"] / N_JOBS, 4),
        "round_trips_per_job": round(report["round_trips"] / N_JOBS, 4),
    }
    note(f"jobfleet {body} c={concurrency}: {result['jobs_per_s']}/s, {worker_us:.0f} µs/job")
    return result


def main() -> None:
    emit(run(sys.argv[1], int(sys.argv[2])))


if __name__ == "__main__":
    main()
