"""Instructions per drained job of the worker AND of the queue's redis-server (callgrind), with
a body that makes one Redis call (INCR on a second redis-server), by claim-sizing policy.

    .venv/bin/python bench/claim_instructions.py [JOBS] [CONCURRENCY,...] [POLICY,...]
    # e.g. bench/claim_instructions.py 1500 10,50 half,all,busy   (tree: the checkout as is)
    PYTHONPATH=/other/worker .venv/bin/python bench/claim_instructions.py 2000 10 tree

For each concurrency and policy: a fresh queue redis-server under callgrind, a plain second
redis-server for the body, the worker (bench/claim_worker.py) under callgrind. Both
processes' counters are zeroed once the worker drained a first batch, JOBS jobs are
enqueued, and both are dumped when the last one completed. Counts do not move with the
machine's load as seconds do; they move a little with how the jobs fall into claims (both
processes run ~50x slower under callgrind, the body's server does not).
"""

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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import jobfleet
import redis
from common import callgrind_control as control
from common import callgrind_total as total
from redis_server import free_port

BENCH = Path(__file__).resolve().parent
WARM = 50


def server(port: int, work: Path, out: Path | None) -> subprocess.Popen[bytes]:
    cmd = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
           "--dir", str(work)]  # fmt: skip
    if out is not None:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def answering(port: int) -> redis.Redis:
    conn = redis.Redis(port=port)
    for _ in range(600):
        try:
            conn.ping()
            return conn
        except redis.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"redis-server on port {port} does not answer")


def completed(conn: redis.Redis) -> int:
    return int(conn.hget("jf:{bench}:stats", "completed_total") or 0)


def one(jobs: int, concurrency: int, policy: str) -> dict[str, float]:
    work = Path(tempfile.mkdtemp())
    qport, sport = free_port(), free_port()
    qout, wout = work / "redis.out", work / "worker.out"
    queue_server = server(qport, work, qout)
    side_server = server(sport, work, None)
    conn, side = answering(qport), answering(sport)
    url = f"redis://127.0.0.1:{qport}/0"
    env = dict(
        os.environ,
        BENCH_REDIS_URL=url,
        BENCH_SIDE_REDIS_URL=f"redis://127.0.0.1:{sport}/0?socket_connect_timeout=120&socket_timeout=120",
        PYTHONHASHSEED="0",
    )
    worker = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={wout}", sys.executable,
         str(BENCH / "claim_worker.py"), "--concurrency", str(concurrency), "--policy", policy],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip

    async def enqueue(n: int) -> None:
        async with jobfleet.Client(url, queue="bench") as client:
            await client.enqueue_many([{"name": "body", "payload": {"i": i}} for i in range(n)])

    report: dict[str, int] = {}
    try:
        asyncio.run(enqueue(WARM))
        assert worker.stdout is not None
        while (line := worker.stdout.readline()).strip() != "READY":
            assert line, "the worker exited before its first claim"
        while completed(conn) < WARM:
            time.sleep(0.2)
        time.sleep(1)
        control("-z", worker.pid)
        control("-z", queue_server.pid)
        asyncio.run(enqueue(jobs))
        while completed(conn) < WARM + jobs:
            time.sleep(0.2)
        control("-d", worker.pid)
        control("-d", queue_server.pid)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=600)
        for line in out.splitlines():
            if line.startswith("REPORT "):
                report = json.loads(line[7:])
        conn.shutdown(nosave=True)
        side.shutdown(nosave=True)
        queue_server.wait()
        side_server.wait()
    claims = report.get("claims", 0) / max(report.get("completed", 1), 1)
    return {
        "worker": total(wout) / jobs,
        "redis": total(qout) / jobs,
        "claims_per_job": claims,
    }


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    concurrencies = [int(c) for c in (sys.argv[2] if len(sys.argv) > 2 else "10,50").split(",")]
    policies = (sys.argv[3] if len(sys.argv) > 3 else "half,all,busy").split(",")
    print(f"jobfleet from {Path(jobfleet.__file__).parent}; {jobs} jobs per run", flush=True)
    for c in concurrencies:
        for policy in policies:
            r = one(jobs, c, policy)
            print(
                f"concurrency {c:>3} policy {policy:<5} worker instr/job {r['worker']:>11,.0f}  "
                f"redis instr/job {r['redis']:>9,.0f}  claims/job {r['claims_per_job']:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
