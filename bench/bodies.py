"""`bench/run.sh bodies`: jobfleet and BullMQ draining real job bodies at concurrency 1, 10, 50.

For each round, body and concurrency, one run of each system on a fresh redis-server
(bench/run_one.py), the systems' order flipped every round (A B, B A, ...), `uptime` printed
and recorded before each run. The bodies' second redis-server (for INCR) and the aiohttp
server (its own process) are started once for the whole benchmark. Results go to
bench/.out/bodies-*.jsonl; bench/bodies_report.py renders the table of medians.

Env: BENCH_ROUNDS (3), BENCH_BODIES ("noop redis http sleep cpu"), BENCH_CONCURRENCY
("1 10 50"), BENCH_SYSTEMS ("jobfleet bullmq"; "jobfleet-uvloop" is jobfleet on uvloop, which
`bench/run.sh bodies` installs into .venv: it is no dependency of the project),
BENCH_BODY_JOBS (10000 jobs per run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import RedisServer

BENCH = Path(__file__).resolve().parent
PY = sys.executable


def driver(system: str, body: str, concurrency: int) -> tuple[list[str], dict[str, str]]:
    args = [body, str(concurrency)]
    if system == "bullmq":
        return ["node", str(BENCH / "bodies_bullmq.mjs"), *args], {}
    loop = "uvloop" if system == "jobfleet-uvloop" else "asyncio"
    return [PY, str(BENCH / "bodies_jobfleet.py"), *args], {"BENCH_LOOP": loop}


def main() -> int:
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    bodies = os.environ.get("BENCH_BODIES", "noop redis http sleep cpu").split()
    levels = [int(c) for c in os.environ.get("BENCH_CONCURRENCY", "1 10 50").split()]
    systems = os.environ.get("BENCH_SYSTEMS", "jobfleet bullmq").split()
    out = BENCH / ".out"
    out.mkdir(exist_ok=True)
    results = out / f"bodies-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.jsonl"
    with RedisServer() as side:
        http = subprocess.Popen(
            [PY, str(BENCH / "bodies_http.py")], stdout=subprocess.PIPE, text=True
        )
        try:
            assert http.stdout is not None
            port = http.stdout.readline().split()[1]
            env = dict(
                os.environ,
                BENCH_SIDE_REDIS_URL=side.url,
                BENCH_HTTP_URL=f"http://127.0.0.1:{port}/",
            )
            for r in range(rounds):
                order = systems if r % 2 == 0 else systems[::-1]
                for body in bodies:
                    for c in levels:
                        for system in order:
                            uptime = subprocess.run(
                                ["uptime"], capture_output=True, text=True
                            ).stdout.strip()
                            what = f"round {r + 1} {system} {body} c={c}"
                            print(f"== {what}: {uptime}", file=sys.stderr)
                            cmd, extra = driver(system, body, c)
                            run_env = dict(env, **extra, BENCH_UPTIME=uptime)
                            subprocess.run(
                                [PY, str(BENCH / "run_one.py"), str(results), *cmd],
                                env=run_env,
                                stdout=subprocess.DEVNULL,
                                check=True,
                            )
        finally:
            http.terminate()
            http.wait(timeout=30)
    subprocess.run([PY, str(BENCH / "bodies_report.py"), str(results)], check=True)
    print(f"raw results: {results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
