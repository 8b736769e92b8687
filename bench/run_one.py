"""Run one benchmark driver on a fresh redis-server; append its result and the load to JSONL."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from common import busy_cores, cpu_sample
from redis_server import RedisServer


def go_compiles() -> int:
    """Processes of a Go build (`go build` or the `compile` tool) running on the machine."""
    count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = Path(argv[0].decode(errors="replace")).name
        if name == "compile" or (name == "go" and argv[1:2] == [b"build"]):
            count += 1
    return count


def cpu_busy(seconds: float = 1.0) -> float:
    """Cores kept busy by the machine's other work, sampled just before a run."""
    before = cpu_sample()
    time.sleep(seconds)
    return round(busy_cores(before, cpu_sample()), 2)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    if len(sys.argv) < 3:
        print("usage: run_one.py RESULTS.jsonl COMMAND [ARGS...]", file=sys.stderr)
        return 2
    results, cmd = Path(sys.argv[1]), sys.argv[2:]
    # Wait (until $BENCH_QUIET_UNTIL, a Unix time) while other work keeps half a core busy.
    quiet_until = float(os.environ.get("BENCH_QUIET_UNTIL", "0"))
    others = cpu_busy()
    while (others >= 0.5 or go_compiles()) and time.time() < quiet_until:
        print(f"waiting: other work keeps {others} cores busy", file=sys.stderr)
        time.sleep(4)
        others = cpu_busy()
    load = {
        "uptime_before": os.environ.get("BENCH_UPTIME") or None,  # bench/bodies.py's line
        "load1_before": os.getloadavg()[0],
        "others_cores_busy": others,
        "go_compiles_before": go_compiles(),
    }
    # Other work during the run: all cores' busy time less our own processes' CPU time
    # (redis-server, the driver and its workers are all waited-for descendants).
    cpu0, ours0, t0 = cpu_sample(), children_cpu(), time.monotonic()
    with RedisServer() as server:
        env = dict(os.environ, BENCH_REDIS_URL=server.url)
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=False)
    ours = (children_cpu() - ours0) / (time.monotonic() - t0)
    load["others_cores_during"] = round(max(0.0, busy_cores(cpu0, cpu_sample()) - ours), 2)
    if proc.returncode != 0 or not proc.stdout.strip():
        print(f"{' '.join(cmd)} failed with exit code {proc.returncode}", file=sys.stderr)
        return proc.returncode or 1
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result |= load | {
        "load1_after": os.getloadavg()[0],
        "go_compiles_after": go_compiles(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with results.open("a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
