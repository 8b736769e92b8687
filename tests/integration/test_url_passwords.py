"""Passwords with URL-special characters: percent-encoded they work everywhere; a raw '/', '?'
or '#' is refused with a message that says what to do; no message, log line or chained
exception ever holds any part of the password."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import quote

import jobfleet
import pytest
import redis
from leaks import chain_text, leaked
from redis_server import RedisServer
from waiting import until

# One password per special character, in the middle (as generators place them).
SPECIAL = ["/", "?", "#", "@", ":", "%", " "]
PASSWORDS = {c: f"Hx7mQ2vL{c}pwRt5" for c in SPECIAL}
# Characters that end the host part of a URL when raw: such URLs are refused.
ENDS_HOST = {"/", "?", "#"}


def encoded_url(server: RedisServer, password: str, user: str = "") -> str:
    return f"redis://{user}:{quote(password, safe='')}@127.0.0.1:{server.port}/0"


def raw_url(server: RedisServer, password: str, user: str = "") -> str:
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0"


@pytest.fixture
def locked(request: pytest.FixtureRequest) -> Iterator[tuple[RedisServer, str]]:
    """A redis-server whose requirepass is the parametrized password."""
    password = PASSWORDS[request.param]
    with RedisServer() as server:
        conn = redis.Redis(port=server.port)
        conn.config_set("requirepass", password)
        conn.close()
        yield server, password


def cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBFLEET_")}
    env["JOBFLEET_REDIS_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "jobfleet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], password: str) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jobfleet: "), lines
    assert not leaked(result.stdout + result.stderr, password), result.stderr
    return lines[0]


def refuse_raw(char: str) -> bool:
    return char in ENDS_HOST


# -- the command line ---------------------------------------------------------------------


@pytest.mark.parametrize("locked", SPECIAL, indirect=True)
def test_cli_with_a_percent_encoded_password(locked: tuple[RedisServer, str]) -> None:
    server, password = locked
    url = encoded_url(server, password, user="default")
    out = cli("enqueue", "x", "{}", "--queue", "q", url=url)
    assert out.returncode == 0, out.stderr
    assert "q" in cli("stats", "--json", url=url).stdout


@pytest.mark.parametrize("locked", SPECIAL, indirect=True)
def test_cli_with_a_raw_password(locked: tuple[RedisServer, str]) -> None:
    server, password = locked
    char = password[8]
    result = cli("enqueue", "x", "{}", "--queue", "q", url=raw_url(server, password, "app"))
    if refuse_raw(char):
        line = assert_clean_failure(result, password)
        assert "percent-encode the password" in line and "$JOBFLEET_REDIS_PASSWORD" in line
    else:  # '@', ':', '%' (not followed by hex digits) and ' ' are read unambiguously
        result = cli("enqueue", "x", "{}", url=raw_url(server, password))
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("locked", SPECIAL, indirect=True)
def test_cli_with_a_wrong_password_names_the_server_not_the_password(
    locked: tuple[RedisServer, str],
) -> None:
    server, password = locked
    wrong = password[::-1]
    line = assert_clean_failure(cli("stats", url=encoded_url(server, wrong)), wrong)
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in line
    assert not leaked(line, password)


@pytest.mark.parametrize("char", SPECIAL)
def test_cli_usage_error_that_echoes_a_url_hides_its_password(char: str) -> None:
    password = PASSWORDS[char]
    for url in (f"redis://app:{password}@h:6379/0", f"redis://:{quote(password, safe='')}@h/0"):
        result = cli("stats", "--redis-ulr", url, url="redis://127.0.0.1:1/0")
        assert result.returncode == 2 and "Traceback" not in result.stderr, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "unrecognized arguments: --redis-ulr" in lines[0], lines
        assert not leaked(result.stderr, password), result.stderr


@pytest.mark.parametrize("char", sorted(ENDS_HOST))
def test_cli_worker_refuses_a_raw_password(char: str) -> None:
    password = PASSWORDS[char]
    result = cli("worker", "--handlers", "jobs", url=f"redis://app:{password}@127.0.0.1:1/0")
    line = assert_clean_failure(result, password)
    assert "percent-encode the password" in line


# -- the Client and the worker --------------------------------------------------------------


@pytest.mark.parametrize("locked", SPECIAL, indirect=True)
async def test_client_and_worker_with_a_percent_encoded_password(
    locked: tuple[RedisServer, str], spawn_worker
) -> None:
    server, password = locked
    url = encoded_url(server, password)
    async with jobfleet.Client(url, queue="q") as client:
        job_id = await client.enqueue("nap", {"s": 0})
        worker = spawn_worker(url)
        info = await client.wait(job_id, timeout=60)
        assert info.state is jobfleet.JobState.COMPLETED
    assert worker.terminate() == 0
    log = worker.output()
    assert "worker " in log and "redis://:***@127.0.0.1" in log, log
    assert not leaked(log, password), log


@pytest.mark.parametrize("char", SPECIAL)
async def test_client_refuses_a_raw_password_that_ends_the_host(char: str) -> None:
    password = PASSWORDS[char]
    url = f"redis://app:{password}@127.0.0.1:6379/0"
    if not refuse_raw(char):
        await jobfleet.Client(url).aclose()  # accepted; nothing is contacted
        return
    with pytest.raises(jobfleet.ConfigError, match="percent-encode the password") as err:
        jobfleet.Client(url)
    assert not leaked(chain_text(err.value), password), chain_text(err.value)
    with pytest.raises(jobfleet.ConfigError) as err:
        jobfleet.load_settings(env={"JOBFLEET_REDIS_URL": url})
    assert not leaked(chain_text(err.value), password), chain_text(err.value)
    with pytest.raises(ValueError) as verr:
        jobfleet.WorkerSettings(redis_url=url)
    assert not leaked(str(verr.value), password), str(verr.value)


@pytest.mark.parametrize("char", sorted(ENDS_HOST))
async def test_worker_log_never_holds_a_raw_password(char: str, spawn_worker) -> None:
    password = PASSWORDS[char]
    worker = spawn_worker(f"redis://app:{password}@127.0.0.1:1/0")
    await asyncio.to_thread(worker.proc.wait, 60)
    log = worker.output()
    assert worker.proc.returncode == 1, log
    assert "percent-encode the password" in log and "Traceback" not in log, log
    assert not leaked(log, password), log


async def test_worker_log_of_a_wrong_password(redis_server: RedisServer, spawn_worker) -> None:
    conn = redis.Redis(port=redis_server.port)
    password = PASSWORDS["/"]
    conn.config_set("requirepass", password)
    try:
        wrong = password[::-1]
        worker = spawn_worker(encoded_url(redis_server, wrong))

        async def complained() -> bool:
            return "Redis unavailable" in worker.output()

        await until(complained, what="the worker to log the refused password")
        worker.terminate()
        assert not leaked(worker.output(), wrong), worker.output()
    finally:
        conn = redis.Redis(port=redis_server.port, password=password)
        conn.config_set("requirepass", "")
        conn.close()
