"""Where jobfleet's time goes: cProfile of the client and the worker, Redis commandstats/slowlog."""

from __future__ import annotations

import asyncio
import cProfile
import hashlib
import io
import pstats
import subprocess
import time
from typing import Any
from urllib.parse import urlparse

from bench_jobfleet import QUEUE, spawn_worker, stop_worker, wait_completed
from common import N_JOBS, OUT, emit, note, redis_url, sync_redis
from jobfleet import Client, scripts


def top(stats_source: Any, sort: str, n: int = 30) -> str:
    buf = io.StringIO()
    stats = pstats.Stats(stats_source, stream=buf)
    stats.strip_dirs().sort_stats(sort).print_stats(n)
    return buf.getvalue()


def ping_latency() -> str:
    """`redis-cli --latency --raw` for about a second: min max avg samples (ms)."""
    port = str(urlparse(redis_url()).port)
    cmd = ["redis-cli", "-h", "127.0.0.1", "-p", port, "--latency", "--raw"]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=3).stdout.strip()
    except subprocess.TimeoutExpired as exc:
        return (exc.stdout or b"").decode().strip() or "no sample"


def commandstats(conn: Any) -> dict[str, dict[str, float]]:
    stats = conn.info("commandstats")
    return {k.removeprefix("cmdstat_"): v for k, v in stats.items() if v["calls"]}


def slowlog(conn: Any, names: dict[str, str]) -> dict[str, int]:
    """Slow-log entries by script (or command) name."""
    out: dict[str, int] = {}
    for entry in conn.slowlog_get(1000):
        args = [a.decode() if isinstance(a, bytes) else str(a) for a in entry["command"].split()]
        key = names.get(args[1], args[1]) if args[0].upper() == "EVALSHA" else args[0]
        out[key] = out.get(key, 0) + 1
    return out


async def run() -> dict[str, Any]:
    conn = sync_redis()
    names = {hashlib.sha1(scripts.source(n).encode()).hexdigest(): n for n in scripts.NAMES}
    client = Client(redis_url(), queue=QUEUE)
    await client.enqueue("noop", {}, queue="warmup")
    conn.config_set("slowlog-log-slower-than", 1000)
    conn.config_set("slowlog-max-len", 1000)
    idle_latency = ping_latency()

    # Client: bulk enqueue under cProfile (in this process).
    jobs = [{"name": "noop", "payload": {"i": i}} for i in range(N_JOBS)]
    conn.config_resetstat()
    conn.slowlog_reset()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    await client.enqueue_many(jobs)
    prof.disable()
    enqueue_s = time.perf_counter() - t0
    enqueue_cmds, enqueue_slow = commandstats(conn), slowlog(conn, names)
    (OUT / "profile-enqueue.txt").write_text(
        f"enqueue_many({N_JOBS}) under cProfile: {enqueue_s:.3f} s\n\n"
        + top(prof, "tottime")
        + top(prof, "cumulative")
    )

    # Worker: drain in its own process under cProfile, Redis sampled meanwhile.
    conn.config_resetstat()
    conn.slowlog_reset()
    worker_prof = OUT / "worker.prof"
    worker = spawn_worker(None, "--profile", str(worker_prof))
    loop = asyncio.get_running_loop()
    drain_latency = loop.run_in_executor(None, ping_latency)
    await wait_completed(conn, N_JOBS)
    drain_cmds, drain_slow = commandstats(conn), slowlog(conn, names)
    report = stop_worker(worker)
    (OUT / "profile-worker.txt").write_text(
        f"worker draining {N_JOBS} no-op jobs under cProfile; report {report}\n\n"
        + top(str(worker_prof), "tottime")
        + top(str(worker_prof), "cumulative")
    )
    result = {
        "system": "jobfleet-profile",
        "n": N_JOBS,
        "redis_ping_idle": idle_latency,
        "redis_ping_during_drain": await drain_latency,
        "enqueue_commandstats": enqueue_cmds,
        "enqueue_slowlog_over_1ms": enqueue_slow,
        "drain_commandstats": drain_cmds,
        "drain_slowlog_over_1ms": drain_slow,
        "worker_report": report,
    }
    note(f"profiles in {OUT}/profile-enqueue.txt and {OUT}/profile-worker.txt")
    await client.aclose()
    return result


def main() -> None:
    emit(asyncio.run(run()))


if __name__ == "__main__":
    main()
