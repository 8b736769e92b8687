"""Instructions per one-job enqueue, counted by callgrind (valgrind): repeatable on a noisy
machine, where seconds are not.

    .venv/bin/python bench/wire.py            # this checkout
    PYTHONPATH=/other/worker .venv/bin/python bench/wire.py   # another version, to compare

Measures, each in a process of its own with its counters zeroed after a warm-up:
- Redis: instructions redis-server executes per call of the enqueue script (one job, no
  options), pipelined so that the client's speed does not matter;
- the calling Python process, per one-job enqueue: redis-py's `execute_command` of the same
  EVALSHA (what jobfleet sent through before jobfleet.wire), `Engine.enqueue` (the wire), and
  `Client.enqueue` (validation and encoding included); `ping` for scale, and `floor`: a
  bare asyncio protocol's PING round trip, the least any asyncio client can cost per call.
A measured part runs under callgrind about 50 times slower than normal; the counts do not
change with the machine's load (valgrind's --tool=callgrind counts instructions, not time).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from common import callgrind_control as control
from common import callgrind_total as total
from redis_server import free_port

CALLS = int(os.environ.get("BENCH_WIRE_CALLS", "2000"))
# BENCH_WIRE_VARIANTS: a comma-separated subset (an A/B of jobfleet's own share needs only
# engine and client); BENCH_WIRE_REDIS=0 skips the Redis side.
VARIANTS = tuple(
    os.environ.get("BENCH_WIRE_VARIANTS", "floor,ping,execute_command,engine,client").split(",")
)
REDIS_SIDE = os.environ.get("BENCH_WIRE_REDIS", "1") != "0"


def callgrind_redis() -> tuple[subprocess.Popen[bytes], Any, Path]:
    """A fresh redis-server under callgrind, once it answers: (process, a redis-py connection,
    the dump file callgrind_control -d writes, less its `.1`)."""
    import redis

    work = Path(tempfile.mkdtemp())
    port = free_port()
    out = work / "redis.out"
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "redis-server",
         "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    conn = redis.Redis(port=port)
    for _ in range(600):
        try:
            conn.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    return server, conn, out


def redis_side() -> float:
    """Instructions Redis executes per one-job enqueue script call."""
    import redis
    from jobfleet.engine import EncodedJob, Engine

    server, conn, out = callgrind_redis()
    port = conn.connection_pool.connection_kwargs["port"]
    client_conn = redis.Redis(port=port)
    eng = Engine(client_conn, "bench")  # type: ignore[arg-type]  # only its keys and scripts
    keys = eng.keys.script

    def args(i: int) -> list[Any]:
        job = EncodedJob(id=f"{i:032x}", name="email", payload=f'{{"i": {i}}}', priority=2)
        return [eng.prefix, *Engine._enqueue_args([job])]

    sha = conn.script_load(eng._scripts["enqueue"].script)
    for i in range(50):
        conn.evalsha(sha, len(keys), *keys, *args(i))
    control("-z", server.pid)
    for start in range(0, CALLS, 100):
        pipe = conn.pipeline(transaction=False)
        for i in range(start, start + 100):
            pipe.evalsha(sha, len(keys), *keys, *args(1000 + i))
        pipe.execute()
    control("-d", server.pid)
    conn.shutdown(nosave=True)
    server.wait()
    return total(out) / CALLS


async def python_side(variant: str, port: int) -> None:
    """The measured loop of one variant (run in a process under callgrind)."""
    import jobfleet

    client = jobfleet.Client(f"redis://127.0.0.1:{port}/0", queue="bench")
    await client.enqueue("email", {"i": 0})
    eng = client.engine()
    spec = jobfleet.JobSpec(name="email", payload={"i": 1})
    script = eng._scripts["enqueue"]

    floor = await _Floor.connect(port) if variant == "floor" else None

    async def one(i: int) -> object:
        if floor is not None:
            return await floor.ping()
        if variant == "ping":
            return await client.conn.ping()
        if variant == "execute_command":
            args = [eng._wire_prefix, *eng._enqueue_args([client.encode(spec)])]
            return await client.conn.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", script.sha, len(eng._wire_keys), *eng._wire_keys, *args
            )
        if variant == "engine":
            return await eng.enqueue([client.encode(spec)])
        return await client.enqueue("email", {"i": i})

    for i in range(50):
        await one(i)
    control("-z", os.getpid())
    for i in range(CALLS):
        await one(i)
    control("-d", os.getpid())
    await client.aclose()


class _Floor(asyncio.Protocol):
    """The least an asyncio round trip to Redis can cost in Python: a bare protocol that
    writes PING and resolves a future when the reply's bytes arrive (no parsing, no pool)."""

    def __init__(self) -> None:
        self.waiting: asyncio.Future[bytes] | None = None
        self.transport: asyncio.Transport | None = None

    @classmethod
    async def connect(cls, port: int) -> _Floor:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, "127.0.0.1", port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(data)

    async def ping(self) -> bytes:
        assert self.transport is not None
        self.waiting = asyncio.get_running_loop().create_future()
        self.transport.write(b"*1\r\n$4\r\nPING\r\n")
        return await self.waiting


def python_run(variant: str) -> float:
    work = Path(tempfile.mkdtemp())
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(work)], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    out = work / "py.out"
    try:
        time.sleep(0.3)
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             __file__, "--variant", variant, str(port)],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait()
    return total(out) / CALLS


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--variant":
        asyncio.run(python_side(sys.argv[2], int(sys.argv[3])))
        return
    for tool in ("valgrind", "callgrind_control", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (apt-get install valgrind redis-server)")
    import jobfleet

    print(f"jobfleet from {Path(jobfleet.__file__).parent}, {CALLS} calls each")
    if REDIS_SIDE:
        print(f"redis-server, per enqueue script call: {redis_side():,.0f} instructions")
    for variant in VARIANTS:
        print(f"python, per {variant}: {python_run(variant):,.0f} instructions")


if __name__ == "__main__":
    main()
