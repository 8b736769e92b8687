"""rediss:// without Sentinel: a real redis-server with TLS, a Client and a worker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jobfleet
import pytest
import redis
from redis_server import RedisServer, TLSFiles


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, TLSFiles]]:
    tls = TLSFiles.create(tmp_path_factory.mktemp("tls"))
    with RedisServer(tls=tls) as server:
        yield server, tls


@pytest.mark.parametrize("verify", ["none", "ca"])
async def test_client_enqueues_and_a_worker_drains_over_tls(tls_server, verify, spawn_worker):
    server, tls = tls_server
    query = "ssl_cert_reqs=none" if verify == "none" else f"ssl_ca_certs={tls.cert}"
    url = f"rediss://127.0.0.1:{server.tls_port}/0?{query}"
    async with jobfleet.Client(url, queue="q") as client:
        ids = await client.enqueue_many([{"name": "nap", "payload": {"s": 0}}] * 5)
        worker = spawn_worker(url)
        for job_id in ids:
            assert (await client.wait(job_id, timeout=60)).state is jobfleet.JobState.COMPLETED
    assert worker.terminate() == 0, worker.output()
    with redis.Redis(port=server.port) as plain:  # the plain port, to see what TLS wrote
        assert plain.hget("jf:{q}:stats", "completed_total") == b"5"
        plain.flushall()


def unverifiable_urls(server: RedisServer, tmp_path: Path) -> list[str]:
    other = TLSFiles.create(tmp_path)  # a CA that did not sign the server's certificate
    return [
        f"rediss://127.0.0.1:{server.tls_port}/0?ssl_ca_certs={other.cert}",
        f"rediss://127.0.0.1:{server.tls_port}/0",  # verification is on by default
    ]


async def test_a_certificate_from_an_unknown_ca_is_refused(tls_server, tmp_path: Path):
    for url in unverifiable_urls(tls_server[0], tmp_path):
        async with jobfleet.Client(url, queue="q") as client:
            with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
                await client.enqueue("nap", {"s": 0})


def test_the_cli_says_why_in_one_line(tls_server, tmp_path: Path):
    server, _ = tls_server
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBFLEET_")}
    for url in unverifiable_urls(server, tmp_path):
        out = subprocess.run(
            [sys.executable, "-m", "jobfleet", "--redis-url", url, "stats"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "certificate verify failed" in lines[0], lines
        assert f"cannot reach Redis at rediss://127.0.0.1:{server.tls_port}/0" in lines[0]
