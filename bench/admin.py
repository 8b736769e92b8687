"""The admin API's speed: HTTP enqueue (one job a request, and bulk), stats of 100 queues in
one request, a page of 50 from a queue of 1,000,000 waiting jobs.

`jobfleet admin` runs as its own process (as in production), the load comes from this one
over several keep-alive connections. Latencies are the server's own (its `Server-Timing`
header: from the request reaching the app to the reply being ready), p50 of many requests.
Run through `bash bench/run.sh admin` (a fresh redis-server; one JSON line to bench/.out/).
Env: BENCH_ADMIN_SINGLE (20000), BENCH_ADMIN_BULK (200000), BENCH_ADMIN_DEEP (1000000),
BENCH_ADMIN_CONNECTIONS (16), BENCH_ADMIN_PROCESSES (1: `jobfleet admin --processes`; the
server CPU is then the supervisor's and its children's), BENCH_HEY (a `hey` binary: bench/run.sh
admin builds one with Go).

One job a request is measured twice: from this Python process, and from `hey` (a Go load
generator), which spends a fraction of the CPU per request that an aiohttp client does. On a
2-core machine the load generator shares the cores with the server and Redis, so the second
figure is the closer one to what the server itself sustains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import jobfleet
from common import percentile, redis_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import free_port

SINGLE = int(os.environ.get("BENCH_ADMIN_SINGLE", "20000"))
BULK = int(os.environ.get("BENCH_ADMIN_BULK", "200000"))
DEEP = int(os.environ.get("BENCH_ADMIN_DEEP", "1000000"))
CONNECTIONS = int(os.environ.get("BENCH_ADMIN_CONNECTIONS", "16"))
PROCESSES = int(os.environ.get("BENCH_ADMIN_PROCESSES", "1"))
BULK_SIZE = 1000
SAMPLES = 200


def _stat(pid: int | str) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` and its children (the servers of
    `--processes N`), from /proc, for CPU per request."""
    pids = [str(pid)]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(entry.name)[1]) == pid:
                    pids.append(entry.name)
            except OSError:
                continue
    total = 0
    for p in pids:
        with contextlib.suppress(OSError):
            fields = _stat(p)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def server_ms(resp: aiohttp.ClientResponse) -> float:
    timing = resp.headers["Server-Timing"]  # app;dur=1.234
    return float(timing.split("dur=", 1)[1])


async def spread(n: int, connections: int, one: Any) -> float:
    """Run `one(i)` for i in range(n) over `connections` concurrent loops; seconds taken."""
    counter = iter(range(n))

    async def loop() -> None:
        for i in counter:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(connections)))
    return time.perf_counter() - start


def hey_single(url: str, token: str, pid: int) -> dict[str, Any]:
    """One job a request from `hey` ($BENCH_HEY), if there is one: jobs/s and server CPU."""
    hey = os.environ.get("BENCH_HEY", "")
    if not hey or not Path(hey).is_file():
        return {}
    args = [hey, "-c", str(CONNECTIONS), "-m", "POST", "-T", "application/json"]
    args += ["-H", f"Authorization: Bearer {token}", "-d", '{"name": "n", "payload": {"i": 1}}']
    subprocess.run([*args, "-n", "1000", url], capture_output=True, check=True)  # warm-up
    cpu0 = cpu_seconds(pid)
    report = subprocess.run([*args, "-n", str(SINGLE), url], capture_output=True, text=True)
    cpu = cpu_seconds(pid) - cpu0
    rate = re.search(r"Requests/sec:\s+([\d.]+)", report.stdout)
    if report.returncode != 0 or rate is None or f"[201]\t{SINGLE} responses" not in report.stdout:
        raise RuntimeError(f"hey failed: {report.stdout[-2000:]} {report.stderr[-2000:]}")
    return {
        "single_hey_jobs_per_s": round(float(rate.group(1))),
        "single_hey_server_cpu_us": round(cpu / SINGLE * 1e6),
    }


def start_server() -> tuple[subprocess.Popen[bytes], int, str]:
    """`jobfleet admin` in a process of its own, with one admin token."""
    token = secrets.token_hex(16)
    tokens = Path(tempfile.mkdtemp()) / "tokens"
    tokens.write_text(f"admin {token}\n")
    port = free_port()
    args = ["admin", "--port", str(port), "--tokens", str(tokens), "--redis-url", redis_url()]
    args += ["--log-level", "WARNING", "--max-body", str(8 << 20)]
    if PROCESSES > 1:  # the flag alone: a tree from before it (an A/B run) has no such flag
        args += ["--processes", str(PROCESSES)]
    return subprocess.Popen([sys.executable, "-m", "jobfleet", *args]), port, token


async def main(port: int, token: str, pid: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}/api/v1"
    out: dict[str, Any] = {
        "system": "jobfleet-admin",
        "connections": CONNECTIONS,
        "processes": PROCESSES,
    }
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as http:
        for _ in range(600):
            try:
                async with http.get(base + "/whoami") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        await every_process_listens(base)
        # Warm-up: scripts loaded, connections open.
        await spread(
            200, CONNECTIONS, lambda i: post(http, base + "/queues/warm/jobs", {"name": "n"})
        )

        cpu0 = cpu_seconds(pid)
        secs = await spread(
            SINGLE,
            CONNECTIONS,
            lambda i: post(http, base + "/queues/single/jobs", {"name": "n", "payload": {"i": i}}),
        )
        out["single_jobs_per_s"] = round(SINGLE / secs)
        out["single_server_cpu_us"] = round((cpu_seconds(pid) - cpu0) / SINGLE * 1e6)
        out.update(hey_single(base + "/queues/hey/jobs", token, pid))

        chunk = {"jobs": [{"name": "n", "payload": {"i": i}} for i in range(BULK_SIZE)]}
        requests = BULK // BULK_SIZE
        cpu0 = cpu_seconds(pid)  # the bulk phase alone (it counted the one-job phases too)
        secs = await spread(
            requests, 2, lambda i: post(http, base + "/queues/bulk/jobs/bulk", chunk)
        )
        out["bulk_jobs_per_s"] = round(requests * BULK_SIZE / secs)
        out["bulk_server_cpu_us_per_job"] = round((cpu_seconds(pid) - cpu0) / BULK * 1e6, 1)

        out.update(await library_control())
        async with jobfleet.Client(redis_url()) as client:
            for q in range(100):
                await client.enqueue("n", {"q": q}, queue=f"stats-{q:03d}")
        names = set()
        times = []
        for _ in range(SAMPLES):
            async with http.get(base + "/queues") as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200:
                    raise RuntimeError(f"GET /queues: {resp.status} {body}")
                times.append(server_ms(resp))
                names = {q["queue"] for q in body["queues"]}
        out["queues_in_stats"] = len(names)
        out["stats_p50_ms"] = round(percentile(times, 50), 2)
        out["stats_p99_ms"] = round(percentile(times, 99), 2)

        out.update(await deep_page(http, base))
    return out


async def every_process_listens(base: str) -> None:
    """Until each of the PROCESSES servers has answered a connection of its own: keep-alive
    connections opened before a child listens would all stay on the others."""
    seen: set[str] = set()
    root = base.removesuffix("/api/v1")
    for _ in range(600):
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as s, s.get(root + "/healthz") as r:
            seen.add(r.headers.get("Jobfleet-Process", ""))
        if len(seen) >= PROCESSES:
            return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"only {len(seen)} of {PROCESSES} server processes answered")


async def library_control() -> dict[str, Any]:
    """The same enqueues through `jobfleet.Client` in this process, no HTTP: what the
    machine allows right now, to read the HTTP figures against."""
    async with jobfleet.Client(redis_url(), queue="control") as client:
        await client.enqueue("n")
        secs = await spread(SINGLE, CONNECTIONS, lambda i: client.enqueue("n", {"i": i}))
        single = round(SINGLE / secs)
        batch = [{"name": "n", "payload": {"i": i}} for i in range(BULK_SIZE)]
        requests = BULK // BULK_SIZE
        secs = await spread(requests, 2, lambda i: client.enqueue_many(batch))
    return {
        "library_single_jobs_per_s": single,
        "library_bulk_jobs_per_s": round(requests * BULK_SIZE / secs),
    }


async def post(http: aiohttp.ClientSession, url: str, body: Any) -> None:
    async with http.post(url, json=body) as resp:
        if resp.status != 201:
            raise RuntimeError(f"POST {url}: {resp.status} {await resp.text()}")
        await resp.read()


async def deep_page(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """Pages of 50 from a queue of DEEP waiting jobs: the first, and those after it."""
    url = base + "/queues/deep/jobs?state=waiting&limit=50"
    async with http.get(url) as resp:
        if resp.status == 501:
            print(
                "page of 50: skipped, the library has no Client.jobs yet (h12-verbs)",
                file=sys.stderr,
            )
            return {"page_skipped": "no Client.jobs"}
    async with jobfleet.Client(redis_url(), queue="deep") as client:
        batch = [{"name": "n", "payload": {"i": i}} for i in range(10_000)]
        for _ in range(DEEP // len(batch)):
            await client.enqueue_many(batch)
        waiting = (await client.inspect()).waiting
    first, later = [], []
    for i in range(SAMPLES):
        async with http.get(url) as resp:
            page = await resp.json()
            first.append(server_ms(resp))
        if i < SAMPLES // 4:  # follow the links a few pages deep
            link = page["links"]["next"]
            for _ in range(4):
                async with http.get(base.removesuffix("/api/v1") + link) as resp:
                    page = await resp.json()
                    later.append(server_ms(resp))
                    link = page["links"]["next"]
    return {
        "deep_waiting": waiting,
        "page_first_p50_ms": round(percentile(first, 50), 2),
        "page_next_p50_ms": round(percentile(later, 50), 2),
        "page_p99_ms": round(percentile(first + later, 99), 2),
    }


if __name__ == "__main__":
    server, port, token = start_server()
    try:
        result = asyncio.run(main(port, token, server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(result, indent=2), file=sys.stderr)
    print(json.dumps(result))
