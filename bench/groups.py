"""Job groups (issue #14): drain throughput with G groups holding work against the same queue
without groups, and the claim script's cost as the number of groups grows.

Usage: .venv/bin/python bench/groups.py [drain|claim|both] [ROUNDS]
  drain: 20,000 no-op jobs (BENCH_JOBS) spread evenly over G = 0 (no groups), 1, 100, 10,000
         groups, drained by one worker process (bench/jf_worker.py); rounds interleave the G
         values. Drain rate from the jobs' own start/finish times, worker and Redis CPU per job.
  claim: G = 1, 10, 100, 1k, 10k groups with work (and G = 0); 2,000 claims of 10 jobs, each
         acknowledging the previous batch, straight through the engine; the claim script's
         `usec_per_call` from INFO commandstats (Redis CPU inside the script) per claim and per
         job. The groups keep work for the whole run, so the ring holds G groups throughout.
A fresh redis-server per measurement (tests/redis_server.py). CPU per job is the figure to
read on a shared machine: a process waiting for a core is slow, but spends no more CPU.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab_drain import one
from redis_server import RedisServer

DRAIN_GROUPS = (0, 1, 100, 10_000)
CLAIM_GROUPS = (0, 1, 10, 100, 1_000, 10_000)
CLAIMS, BATCH = 2_000, 10


def _jobs(n: int, groups: int) -> list[dict[str, Any]]:
    if groups == 0:
        return [{"name": "noop", "payload": {"i": i}} for i in range(n)]
    return [{"name": "noop", "payload": {"i": i}, "group": f"t{i % groups}"} for i in range(n)]


async def drain_once(groups: int) -> tuple[float, float, float]:
    """(drain jobs/s, worker CPU µs/job, Redis CPU µs/job) with the jobs over `groups`."""
    _, drain, worker_cpu, redis_drain = await one({}, lambda n: _jobs(n, groups))
    return drain, worker_cpu, redis_drain


async def claim_once(groups: int) -> float:
    """The claim script's mean Redis CPU (µs) per call at `groups` groups with work."""
    with RedisServer() as server:
        from jobfleet import Client
        from jobfleet.engine import ClaimPolicy

        client = Client(server.url, queue="bench")
        total = max(CLAIMS * BATCH * 2, groups * 3)  # the groups never run dry
        await client.enqueue_many(_jobs(total, groups))
        eng = client.engine()
        policy = ClaimPolicy(
            lease_ms=600_000, worker_ttl_ms=600_000, max_attempts=3, poison_after=3
        )
        await client.conn.config_resetstat()
        acks: list[tuple[str, str, str]] = []
        for i in range(CLAIMS):
            token = f"t{i}"
            got = await eng.claim(
                token=token, n=BATCH, worker_id="w", policy=policy, completions=acks
            )
            acks = [(j.id, token, "null") for j in got.jobs]
        stats = await client.conn.info("commandstats")
        await client.aclose()
        evalsha = stats["cmdstat_evalsha"]
        return float(evalsha["usec_per_call"])


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "both"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(f"uptime: {os.popen('uptime').read().strip()}")
    if mode in ("drain", "both"):
        results: dict[int, list[tuple[float, float, float]]] = {g: [] for g in DRAIN_GROUPS}
        for _ in range(rounds):
            for g in DRAIN_GROUPS:
                results[g].append(asyncio.run(drain_once(g)))
        base = statistics.median(r[0] for r in results[0])
        print(
            "groups | drain jobs/s (median) | vs no groups | worker CPU µs/job | Redis CPU µs/job"
        )
        for g, rows in results.items():
            rate = statistics.median(r[0] for r in rows)
            wcpu = statistics.median(r[1] for r in rows)
            rcpu = statistics.median(r[2] for r in rows)
            label = "none" if g == 0 else f"{g:,}"
            print(f"{label} | {rate:,.0f} | {rate / base:.0%} | {wcpu:.1f} | {rcpu:.1f}")
    if mode in ("claim", "both"):
        print(f"claim script, {CLAIMS} claims of {BATCH} (each acking the previous batch)")
        print("groups | µs per claim (median) | µs per job")
        for g in CLAIM_GROUPS:
            t0 = time.perf_counter()
            us = statistics.median(asyncio.run(claim_once(g)) for _ in range(rounds))
            label = "none" if g == 0 else f"{g:,}"
            print(f"{label} | {us:.1f} | {us / BATCH:.1f}   ({time.perf_counter() - t0:.0f} s)")
    print(f"uptime: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
