"""Single-job enqueue (jobfleet): one call at a time, then 100 concurrent callers.

Prints one JSON line: jobs/s, p50 latency of a call, and CPU per job of the calling process
and of Redis (INFO cpu), for each mode. bench/bullmq_single.mjs measures BullMQ's `add` the
same way; `bench/run.sh single` runs both, interleaved, on fresh redis-servers.
BENCH_LOOP=uvloop runs the caller on uvloop (jobfleet.event_loop), reported as "jobfleet-uvloop".
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jobfleet
from common import ServerMeter, emit, redis_url, sync_redis
from jobfleet import event_loop

N = int(os.environ.get("BENCH_SINGLE_JOBS", "20000"))
CALLERS = 100
LOOP = os.environ.get("BENCH_LOOP", "asyncio")


async def run() -> dict[str, object]:
    conn = sync_redis()
    client = jobfleet.Client(redis_url(), queue="single")
    for i in range(500):  # scripts loaded, connections made, code warm
        await client.enqueue("warmup", {"i": i}, queue="warmup")
    system = "jobfleet" if LOOP == "asyncio" else f"jobfleet-{LOOP}"
    out: dict[str, object] = {"system": system, "n": N}

    meter = ServerMeter(conn)
    cpu0, t0 = time.process_time(), time.perf_counter()
    calls = []
    for i in range(N):
        t = time.perf_counter()
        await client.enqueue("email", {"to": "ada@example.com", "i": i})
        calls.append(time.perf_counter() - t)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    out |= {
        "seq_per_s": round(N / wall),
        "seq_p50_ms": round(statistics.median(calls) * 1e3, 3),
        "seq_client_cpu_us": round(cpu / N * 1e6, 1),
        "seq_redis_cpu_us": round(meter.per_job(N)[0], 1),
    }

    async def caller(k: int) -> None:
        for i in range(N // CALLERS):
            await client.enqueue("email", {"to": "ada@example.com", "i": i, "k": k})

    meter = ServerMeter(conn)
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(CALLERS)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    n = N // CALLERS * CALLERS
    out |= {
        "conc_per_s": round(n / wall),
        "conc_client_cpu_us": round(cpu / n * 1e6, 1),
        "conc_redis_cpu_us": round(meter.per_job(n)[0], 1),
    }
    waiting = (await client.inspect(queue="single")).waiting
    if waiting != N + n:
        raise RuntimeError(f"{waiting} jobs waiting, expected {N + n}")
    await client.aclose()
    return out


if __name__ == "__main__":
    emit(event_loop.run(run, LOOP))
