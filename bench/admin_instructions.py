"""Instructions per one-job `POST /api/v1/queues/{queue}/jobs` in the `jobfleet admin` process,
counted by callgrind: the server's own cost per request, repeatable on a noisy machine.

    .venv/bin/python bench/admin_instructions.py                       # this checkout
    PYTHONPATH=/other/worker .venv/bin/python bench/admin_instructions.py   # another version

`jobfleet admin` (one process) runs under callgrind against a plain redis-server; `hey`
($BENCH_HEY, as bench/run.sh admin builds it) sends the requests over 16 keep-alive
connections; the counters are zeroed after a warm-up and dumped after BENCH_ADMIN_CALLS
requests (default 2000). Under callgrind the server runs about 50 times slower; the counts
do not depend on the machine's load.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from wire import control, total

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import free_port

CALLS = int(os.environ.get("BENCH_ADMIN_CALLS", "2000"))
HEY = os.environ.get("BENCH_HEY") or str(Path.home() / ".cache/jobfleet/hey-v0.1.4/hey")


def hey(url: str, token: str, n: int) -> None:
    args = [HEY, "-n", str(n), "-c", "16", "-m", "POST", "-T", "application/json"]
    args += ["-H", f"Authorization: Bearer {token}", "-d", '{"name": "n", "payload": {"i": 1}}']
    report = subprocess.run([*args, url], capture_output=True, text=True, check=True)
    if f"[201]\t{n} responses" not in report.stdout:
        raise RuntimeError(f"hey: {report.stdout[-1500:]}")


def main() -> None:
    work = Path(tempfile.mkdtemp())
    redis_port, port = free_port(), free_port()
    token = secrets.token_hex(16)
    (work / "tokens").write_text(f"admin {token}\n")
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no",
         "--dir", str(work)], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    out = work / "admin.out"
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         "-m", "jobfleet", "admin", "--port", str(port), "--tokens", str(work / "tokens"),
         "--redis-url", f"redis://127.0.0.1:{redis_port}/0", "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONHASHSEED="0"),
    )  # fmt: skip
    try:
        for _ in range(1200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except OSError:
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/api/v1/queues/hey/jobs"
        hey(url, token, 300)
        control("-z", server.pid)
        hey(url, token, CALLS)
        control("-d", server.pid)
    finally:
        server.terminate()
        server.wait()
        redis.terminate()
        redis.wait()
    print(f"jobfleet admin, instructions per one-job POST: {total(out) / CALLS / 1e3:.1f} k")


if __name__ == "__main__":
    main()
