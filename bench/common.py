"""Helpers shared by the Python benchmark drivers (work in the project venv and the peers venv)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

BENCH = Path(__file__).resolve().parent
OUT = BENCH / ".out"
N_JOBS = int(os.environ.get("BENCH_JOBS", "20000"))
N_LATENCY = int(os.environ.get("BENCH_LATENCY_JOBS", "1000"))
LATENCY_GAP = 0.010  # seconds between two enqueues in the pickup-latency phase


def redis_url() -> str:
    """The fresh redis-server that run_one.py started for this run (loopback only)."""
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def sync_redis() -> redis.Redis:
    return redis.Redis.from_url(redis_url(), decode_responses=True)


class ServerMeter:
    """Redis server CPU seconds and commands executed (including those inside Lua) over a phase."""

    def __init__(self, conn: redis.Redis) -> None:
        self.conn = conn
        self.cpu0, self.cmds0 = self._read()

    def _read(self) -> tuple[float, int]:
        cpu = self.conn.info("cpu")
        stats = self.conn.info("stats")
        used = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
        return used, int(stats["total_commands_processed"])

    def per_job(self, n: int) -> tuple[float, float]:
        """(server CPU µs per job, commands per job) since construction; the INFO calls excluded."""
        cpu1, cmds1 = self._read()
        return (cpu1 - self.cpu0) * 1e6 / n, (cmds1 - self.cmds0 - 2) / n


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def read_latencies(path: Path) -> list[float]:
    """Milliseconds, one per line, as written by a worker's latency handler."""
    return [float(x) for x in path.read_text().split()]


def latency_summary(ms: list[float]) -> dict[str, Any]:
    return {
        "latency_n": len(ms),
        "latency_p50_ms": round(statistics.median(ms), 3),
        "latency_p99_ms": round(percentile(ms, 99), 3),
        "latency_max_ms": round(max(ms), 3),
    }


def wait_until(pred: Any, timeout: float, step: float = 0.02) -> float:
    """Poll `pred` until true; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark phase did not finish in time")
        time.sleep(step)
    return time.monotonic()


def emit(result: dict[str, Any]) -> None:
    """The driver's one result line (JSON) on stdout; progress goes to stderr."""
    print(json.dumps(result), flush=True)


def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children, from /proc."""
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    total = 0.0
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def cpu_sample() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat; busy = user + nice + system, as
    process CPU times count it (interrupt time belongs to no process)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[0] + fields[1] + fields[2], sum(fields[:8])


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Cores busy between two `cpu_sample`s, all processes of the machine."""
    return (after[0] - before[0]) / max(after[1] - before[1], 1) * (os.cpu_count() or 1)


def callgrind_total(out: Path) -> int:
    """Instructions in the dump `callgrind_control -d` wrote (the measured part)."""
    text = Path(f"{out}.1").read_text()
    found = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    assert found, f"no totals in {out}.1"
    return int(found.group(1))


def callgrind_control(op: str, pid: int) -> None:
    """`callgrind_control -z` (zero the counters) or `-d` (dump them) of a process."""
    subprocess.run(["callgrind_control", op, str(pid)], capture_output=True, check=True)
