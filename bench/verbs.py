"""The job-management verbs at the server: a page of `Client.jobs` from a long line, and the
stats of many queues (`Client.queues`), timed by Redis itself (INFO commandstats: the mean
script time per call), on a fresh redis-server.

Usage: .venv/bin/python bench/verbs.py [N_WAITING] [N_QUEUES] [PAGES]
(defaults 1000000, 100, 200). Not a gate: figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import RedisServer


def script_us(conn) -> tuple[float, int]:
    """Mean µs per script call (EVALSHA) since the last CONFIG RESETSTAT, and the calls:
    Redis's own accounting (INFO commandstats), which the commands a script runs are part of.
    SLOWLOG would give each call, but logging every command a script runs slows it down."""
    stats = conn.info("commandstats").get("cmdstat_evalsha", {"usec_per_call": 0, "calls": 0})
    return float(stats["usec_per_call"]), int(stats["calls"])


async def main() -> None:
    n_waiting = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    n_queues = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    pages = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    import redis
    from jobfleet import Client

    with RedisServer() as server:
        sync = redis.Redis(port=server.port)
        client = Client(server.url, queue="big")
        t0 = time.perf_counter()
        chunk = [{"name": "send-email", "payload": {"to": "ada@example.com"}}] * 10_000
        for _ in range(n_waiting // len(chunk)):
            await client.enqueue_many(chunk)
        print(f"enqueued {n_waiting:,} in {time.perf_counter() - t0:.0f} s")
        for i in range(n_queues - 1):
            await client.enqueue("j", None, queue=f"q{i:03d}")
        await client.jobs("waiting", limit=50)  # load the script
        await client.queues()
        sync.config_resetstat()
        cursor = None
        for _ in range(pages):
            page = await client.jobs("waiting", limit=50, cursor=cursor)
            cursor = page.next_cursor
        walking = script_us(sync)
        sync.config_resetstat()
        for _ in range(pages):
            await client.jobs("waiting", limit=50)
        fresh = script_us(sync)
        sync.config_resetstat()
        rounds = 20
        t0 = time.perf_counter()
        for _ in range(rounds):
            await client.queues()
        wall = (time.perf_counter() - t0) / rounds
        per_queue, calls = script_us(sync)
        await client.aclose()
    for label, (us, _) in (("page of 50, walking on", walking), ("first page of 50", fresh)):
        print(f"{label} of {n_waiting:,} waiting: {us / 1000:.2f} ms per call at the server")
    print(
        f"stats of {n_queues} queues: {per_queue * calls / rounds / 1000:.2f} ms of script time "
        f"at the server per queues() call ({wall * 1000:.1f} ms round trip from Python)"
    )


if __name__ == "__main__":
    asyncio.run(main())
