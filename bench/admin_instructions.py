"""Instructions the `jobfleet admin` process executes per one-job POST, counted by callgrind:
repeatable on a noisy machine, where seconds are not.

    .venv/bin/python bench/admin_instructions.py                              # this checkout
    PYTHONPATH=/other/worker .venv/bin/python bench/admin_instructions.py     # another version

The server runs under callgrind (about 50 times slower, so its start is waited for up to
BENCH_ADMIN_START seconds, 900 by default: the first attempt at this measurement gave up too
early); requests come one after another over one keep-alive connection from this process
(`http.client`, whose own instructions are not counted), the counters zeroed after a warm-up.
Measured for scale beside it, the same way: a bare aiohttp server whose one POST handler reads
the body and answers 201 with a small JSON body (what any aiohttp endpoint costs).
BENCH_ADMIN_CALLS (500) requests each; BENCH_ADMIN_BARE=0 skips the bare server.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import callgrind_control as control
from common import callgrind_total as total
from redis_server import free_port

CALLS = int(os.environ.get("BENCH_ADMIN_CALLS", "500"))
START = float(os.environ.get("BENCH_ADMIN_START", "900"))
PATH = "/api/v1/queues/single/jobs"


def bare_server(port: int) -> None:
    """The bare aiohttp server (run in a process of its own, under callgrind)."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=201, body=b'{"id":"x"}', content_type="application/json")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_post(PATH, handle)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def measure(command: list[str], port: int, token: str) -> float:
    """Instructions per POST of the server `command` starts (under callgrind) on `port`."""
    work = Path(tempfile.mkdtemp())
    out = work / "server.out"
    env = dict(os.environ, PYTHONHASHSEED="0")
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        conn = _connected(port, server)
        body = json.dumps({"name": "email", "payload": {"to": "ada@example.com"}})
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        def post() -> None:
            conn.request("POST", PATH, body=body, headers=headers)
            reply = conn.getresponse()
            reply.read()
            if reply.status != 201:
                raise RuntimeError(f"POST answered {reply.status}")

        for _ in range(50):
            post()
        control("-z", server.pid)
        for _ in range(CALLS):
            post()
        control("-d", server.pid)
        conn.close()
    finally:
        server.terminate()
        server.wait()
    return total(out) / CALLS


def _connected(port: int, server: subprocess.Popen[bytes]) -> http.client.HTTPConnection:
    deadline = time.monotonic() + START
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode}) before it answered")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return conn
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the server did not answer within {START:.0f} s")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--bare":
        bare_server(int(sys.argv[2]))
        return
    for tool in ("valgrind", "callgrind_control", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (apt-get install valgrind redis-server)")
    import jobfleet

    work = Path(tempfile.mkdtemp())
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no",
         "--dir", str(work)], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        token = secrets.token_hex(16)
        tokens = work / "tokens"
        tokens.write_text(f"admin {token}\n")
        print(f"jobfleet from {Path(jobfleet.__file__).parent}, {CALLS} requests each")
        port = free_port()
        admin = [sys.executable, "-m", "jobfleet", "admin", "--port", str(port),
                 "--tokens", str(tokens), "--redis-url", f"redis://127.0.0.1:{redis_port}/0",
                 "--log-level", "WARNING"]  # fmt: skip
        print(f"jobfleet admin, per one-job POST: {measure(admin, port, token):,.0f} instructions")
        if os.environ.get("BENCH_ADMIN_BARE", "1") != "0":  # 0: skip (the same in A and B)
            port = free_port()
            bare = [sys.executable, __file__, "--bare", str(port)]
            print(f"bare aiohttp POST handler: {measure(bare, port, token):,.0f} instructions")
    finally:
        redis.terminate()
        redis.wait()


if __name__ == "__main__":
    main()
