"""Instructions a worker executes per drained no-op job, counted by callgrind (valgrind).

    .venv/bin/python bench/drain_instructions.py [JOBS]           # this checkout
    PYTHONPATH=/other/worker .venv/bin/python bench/drain_instructions.py   # another version

A worker (bench/jf_worker.py) runs under callgrind; its counters are zeroed once it has
drained a first batch, then JOBS no-op jobs are enqueued and the counters dumped when the last
one completes. Counts do not move with the machine's load the way seconds do; they move a
little with how the jobs fall into claims.
"""

from __future__ import annotations

import asyncio
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
from redis_server import free_port
from wire import control, total  # bench/wire.py: the same callgrind protocol

BENCH = Path(__file__).resolve().parent
JOBS = int(sys.argv[1]) if len(sys.argv) > 1 else 3000


def completed(conn: redis.Redis) -> int:
    return int(conn.hget("jf:{bench}:stats", "completed_total") or 0)


def main() -> None:
    work = Path(tempfile.mkdtemp())
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(work)], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.3)
    url = f"redis://127.0.0.1:{port}/0"
    out = work / "worker.out"
    env = dict(os.environ, BENCH_REDIS_URL=url, PYTHONHASHSEED="0")
    worker = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         str(BENCH / "jf_worker.py"), "--queue", "bench"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip

    async def enqueue(n: int) -> None:
        async with jobfleet.Client(url, queue="bench") as client:
            await client.enqueue_many([{"name": "noop", "payload": {"i": i}} for i in range(n)])

    conn = redis.Redis(port=port)
    try:
        asyncio.run(enqueue(20))
        assert worker.stdout is not None
        while worker.stdout.readline().strip() != "READY":
            pass
        while completed(conn) < 20:
            time.sleep(0.2)
        time.sleep(1)
        control("-z", worker.pid)
        asyncio.run(enqueue(JOBS))
        while completed(conn) < 20 + JOBS:
            time.sleep(0.2)
        control("-d", worker.pid)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=300)
        conn.shutdown(nosave=True)
        server.wait()
    print(f"jobfleet from {Path(jobfleet.__file__).parent}")
    print(f"worker instructions per drained job: {total(out) / JOBS:,.0f}")


if __name__ == "__main__":
    main()
