"""Instructions per `Client.queues()` of 105 queues, counted by callgrind: what the stats of
a hundred queues cost, repeatable on a noisy machine (seconds are not).

    .venv/bin/python bench/stats_instructions.py                       # this checkout
    PYTHONPATH=/other/worker .venv/bin/python bench/stats_instructions.py   # another version

Two measurements, each with callgrind's counters zeroed after a warm-up: redis-server under
callgrind (the inspect scripts, one pipeline per call, and the listing of queue names), and
the calling Python process under callgrind (the pipeline and the parsing into QueueStats),
plus the admin route's reply: `QueueList` serialised to JSON bytes. Each of the 105 queues
holds one waiting job, as in bench/admin.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wire import control, total

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import free_port

QUEUES = 105
CALLS = int(os.environ.get("BENCH_STATS_CALLS", "20"))


def redis_server(port: int, work: Path, callgrind: Path | None) -> subprocess.Popen[bytes]:
    cmd = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    cmd += ["--dir", str(work)]
    if callgrind is not None:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind}", *cmd]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_up(port: int) -> None:
    import redis

    conn = redis.Redis(port=port)
    for _ in range(600):  # redis-server under valgrind takes seconds to start
        try:
            conn.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    conn.close()


async def fill(port: int) -> None:
    import jobfleet

    async with jobfleet.Client(f"redis://127.0.0.1:{port}/0") as client:
        for q in range(QUEUES):
            await client.enqueue("n", {"q": q}, queue=f"stats-{q:03d}")


async def loop(port: int, measure_pid: int | None) -> None:
    """Warm up, zero the counters of `measure_pid` (this process if None), run CALLS."""
    import jobfleet
    from jobfleet.admin.models import QueueList

    async with jobfleet.Client(f"redis://127.0.0.1:{port}/0") as client:
        for _ in range(3):
            await client.queues()
        pid = measure_pid or os.getpid()
        control("-z", pid)
        for _ in range(CALLS):
            reply = QueueList(queues=await client.queues())
            reply.__pydantic_serializer__.to_json(reply)
        control("-d", pid)
        assert len(reply.queues) == QUEUES


def side(which: str) -> float:
    work = Path(tempfile.mkdtemp())
    port = free_port()
    out = work / f"{which}.out"
    server = redis_server(port, work, out if which == "redis" else None)
    try:
        wait_up(port)
        asyncio.run(fill(port))
        if which == "redis":
            asyncio.run(loop(port, server.pid))
        else:
            subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                 __file__, "--python", str(port)],
                env=dict(os.environ, PYTHONHASHSEED="0"), check=True, capture_output=True,
            )  # fmt: skip
    finally:
        server.terminate()
        server.wait()
        time.sleep(0.2)
    return total(out) / CALLS


def main() -> None:
    if sys.argv[1:2] == ["--python"]:
        asyncio.run(loop(int(sys.argv[2]), None))
        return
    import jobfleet

    print(f"jobfleet from {Path(jobfleet.__file__).parent}", file=sys.stderr)
    redis_ins = side("redis")
    python_ins = side("python")
    print(f"per Client.queues() of {QUEUES} queues + the route's JSON, instructions:")
    print(f"  redis-server: {redis_ins / 1e6:.2f} M ({redis_ins / QUEUES / 1e3:.1f} k a queue)")
    print(f"  python:       {python_ins / 1e6:.2f} M ({python_ins / QUEUES / 1e3:.1f} k a queue)")


if __name__ == "__main__":
    main()
