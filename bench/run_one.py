"""Run one benchmark driver on a fresh redis-server; append its result and the load to JSONL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
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
    """Cores kept busy by the machine's other work, sampled from /proc/stat just before a run."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return round((busy1 - busy0) / max(total1 - total0, 1) * (os.cpu_count() or 1), 2)


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
        "load1_before": os.getloadavg()[0],
        "others_cores_busy": others,
        "go_compiles_before": go_compiles(),
    }
    with RedisServer() as server:
        env = dict(os.environ, BENCH_REDIS_URL=server.url)
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=False)
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
