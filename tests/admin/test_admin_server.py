"""The server around the routes: the body limit, TLS, the static dashboard, and
`jobfleet admin` as a real process (its flags, its access log, SIGTERM)."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import jobfleet
import pytest
import redis
from admin_harness import Tokens, start
from jobfleet.admin.app import create_app, tls_context
from jobfleet.admin.auth import TokenStore
from leaks import leaked
from redis_server import RedisServer, TLSFiles, free_port
from waiting import until


async def test_a_body_over_the_limit_is_a_413_and_writes_nothing(redis_url, tokens_file, tokens):
    async with jobfleet.Client(redis_url) as client:
        runner, url = await start(create_app(client, TokenStore(tokens_file), max_body=4096))
        async with aiohttp.ClientSession(headers=tokens.header("admin")) as session:
            small = {"name": "n", "payload": "x" * 1000}
            async with session.post(url + "/api/v1/queues/q/jobs", json=small) as resp:
                assert resp.status == 201
            with redis.Redis.from_url(redis_url) as conn:
                before = conn.dbsize()
            big = {"name": "n", "payload": "x" * 5000}
            async with session.post(url + "/api/v1/queues/q/jobs", json=big) as resp:
                problem = await resp.json(content_type=None)
                assert (resp.status, resp.content_type) == (413, "application/problem+json")
            assert problem["detail"] == "the request body is over the limit of 4096 bytes"
            with redis.Redis.from_url(redis_url) as conn:
                assert conn.dbsize() == before
        await runner.cleanup()


async def test_tls_serves_https_only(redis_url, tokens_file, tokens, tmp_path: Path):
    tls = TLSFiles.create(tmp_path)
    async with jobfleet.Client(redis_url) as client:
        app = create_app(client, TokenStore(tokens_file))
        runner = aiohttp.web.AppRunner(app)
        await runner.setup()
        port = free_port()
        site = aiohttp.web.TCPSite(
            runner, "127.0.0.1", port, ssl_context=tls_context(str(tls.cert), str(tls.key))
        )
        await site.start()
        trust = ssl.create_default_context(cafile=str(tls.cert))
        async with aiohttp.ClientSession(headers=tokens.header("viewer")) as session:
            async with session.get(f"https://127.0.0.1:{port}/api/v1/whoami", ssl=trust) as resp:
                assert (resp.status, await resp.json()) == (200, {"role": "viewer"})
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/api/v1/whoami") as resp:
                    await resp.read()
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with session.get(f"https://127.0.0.1:{port}/healthz") as resp:
                    await resp.read()  # the default trust store does not know this CA
        await runner.cleanup()


def test_a_bad_certificate_is_one_clear_error(tmp_path: Path):
    (tmp_path / "cert.pem").write_text("not a certificate")
    with pytest.raises(jobfleet.ConfigError, match="cannot load the TLS certificate"):
        tls_context(str(tmp_path / "cert.pem"), str(tmp_path / "cert.pem"))


async def test_the_dashboard_is_served_from_the_static_directory(
    redis_url, tokens_file, tmp_path: Path
):
    (tmp_path / "index.html").write_text("<title>jobfleet</title>")
    (tmp_path / "app.js").write_text("export {}")
    async with jobfleet.Client(redis_url) as client:
        app = create_app(client, TokenStore(tokens_file), static_dir=tmp_path)
        runner, url = await start(app)
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/") as resp:
                assert resp.status == 200 and "<title>jobfleet" in await resp.text()
            async with session.get(url + "/assets/app.js") as resp:
                assert resp.status == 200 and await resp.text() == "export {}"
            async with session.get(url + "/assets/../conftest.py") as resp:
                assert resp.status == 404
        await runner.cleanup()
        empty = create_app(client, TokenStore(tokens_file), static_dir=tmp_path / "none")
        runner, url = await start(empty)
        async with aiohttp.ClientSession() as session, session.get(url + "/") as resp:
            assert resp.status == 404
            assert "without the dashboard" in (await resp.json(content_type=None))["detail"]
        await runner.cleanup()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("JOBFLEET_")}
    return subprocess.run(
        [sys.executable, "-m", "jobfleet", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no tokens: pass --tokens PATH"),
        (["--tokens", "/nonexistent/tokens"], "cannot read tokens at /nonexistent/tokens"),
        (["--tokens", "{f}", "--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["--tokens", "{f}", "--port", "70000"], "--port must be from 0 to 65535"),
        (["--tokens", "{f}", "--max-body", "1"], "--max-body: must be a whole number"),
    ],
)
def test_cli_mistakes_are_one_line(tokens_file, args, message):
    out = cli("admin", *(a.format(f=tokens_file) for a in args))
    assert out.returncode in (1, 2) and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


PASSWORD = "hunter2-secret"


@pytest.fixture
def admin_process(tokens_file: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """`jobfleet admin` against a Redis that needs a password, logging at DEBUG."""
    with RedisServer(extra=["--requirepass", PASSWORD]) as server:
        port = free_port()
        log = tokens_file.parent / "admin.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBFLEET_")}
        env["JOBFLEET_ADMIN_TOKENS"] = str(tokens_file)
        url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
        args = ["admin", "--port", str(port), "--redis-url", url, "--log-level", "DEBUG"]
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jobfleet", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        yield proc, port, log
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


async def test_jobfleet_admin_serves_until_sigterm(admin_process, tokens: Tokens):
    proc, port, log = admin_process
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:

        async def up() -> bool:
            try:
                async with session.get(base + "/healthz") as resp:
                    return resp.status == 200
            except aiohttp.ClientConnectionError:
                assert proc.poll() is None, log.read_text()
                return False

        await until(up, what="jobfleet admin to listen")
        for who in ("admin", "viewer", "wrong"):
            headers = tokens.header(who)
            async with session.get(base + "/api/v1/whoami?token=abc", headers=headers) as resp:
                assert resp.status == (401 if who == "wrong" else 200)
        async with session.post(
            base + "/api/v1/queues/q/jobs", json={"name": "n"}, headers=tokens.header("admin")
        ) as resp:
            assert resp.status == 201
        async with session.get(base + "/api/v1/queues", headers=tokens.header("viewer")) as resp:
            assert [q["queue"] for q in (await resp.json())["queues"]] == ["q"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    text = log.read_text()
    assert f"admin API on http://127.0.0.1:{port}/api/v1" in text
    assert "GET /api/v1/whoami 200" in text and "role=viewer" in text
    assert "GET /api/v1/whoami 401" in text and "?token" not in text
    for secret in (tokens.admin, tokens.viewer, tokens.wrong, PASSWORD):
        assert [p for p in leaked(text, secret) if len(p) >= 4] == [], secret
