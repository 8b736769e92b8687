"""What one round trip to Redis costs the caller: a bare PING on asyncio and on uvloop, then
jobfleet's one-job enqueue on each (the profile of issue 15's single-enqueue target).

Prints one JSON line: for each loop, round trips a second and the caller's CPU per round trip.
Run on a fresh redis-server by `bench/run_one.py`, as bench/RESULTS.md shows.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jobfleet
from common import emit, redis_url
from jobfleet import event_loop

N = int(os.environ.get("BENCH_SINGLE_JOBS", "20000"))
PING = b"*1\r\n$4\r\nPING\r\n"


def _rate(wall: float, cpu: float) -> tuple[int, float]:
    return round(N / wall), round(cpu / N * 1e6, 1)


async def measure(loop_name: str) -> dict[str, object]:
    url = urlparse(redis_url())
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(N):
        writer.write(PING)
        await reader.readuntil(b"\r\n")
    ping = _rate(time.perf_counter() - t0, time.process_time() - cpu0)
    writer.close()
    client = jobfleet.Client(redis_url(), queue="roundtrip")
    for i in range(500):  # scripts loaded, connection made, code warm
        await client.enqueue("email", {"to": "ada@example.com", "i": i})
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(N):
        await client.enqueue("email", {"to": "ada@example.com", "i": i})
    enqueue = _rate(time.perf_counter() - t0, time.process_time() - cpu0)
    await client.aclose()
    return {
        f"{loop_name}_ping_per_s": ping[0],
        f"{loop_name}_ping_caller_cpu_us": ping[1],
        f"{loop_name}_enqueue_per_s": enqueue[0],
        f"{loop_name}_enqueue_caller_cpu_us": enqueue[1],
    }


if __name__ == "__main__":
    out: dict[str, object] = {"bench": "roundtrip", "n": N}
    for name in ("asyncio", "uvloop"):
        out |= event_loop.run(functools.partial(measure, name), name)
    emit(out)
