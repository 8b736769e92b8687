"""Every numeric option is finite and in range before anything is written: inf, nan, negative
and huge values get a ConfigError naming the option and its range, never an OverflowError
or a half-written enqueue."""

from __future__ import annotations

import os
import subprocess
import sys

import jobfleet
import pytest

INF, NAN = float("inf"), float("nan")
BAD = [INF, -INF, NAN, -1.0, 1e300]


def assert_no_chain(exc: BaseException) -> None:
    # A ValidationError chained to the error would print the rejected input in a traceback.
    assert exc.__cause__ is None and exc.__context__ is None


@pytest.mark.parametrize("value", BAD, ids=repr)
@pytest.mark.parametrize(
    ("option", "extra", "allowed"),
    [
        ("delay", {}, "from 0 to 315360000"),
        ("run_at", {}, "from 0 to 253402300799"),
        ("timeout", {}, "from 0.001 to 315360000"),
        ("dedup_ttl", {"dedup_key": "k"}, "from 0.001 to 315360000"),
    ],
)
async def test_enqueue_options(client, option, extra, allowed, value):
    for call in (
        lambda: client.enqueue("x", 1, **extra, **{option: value}),
        lambda: client.enqueue_many([{"name": "x", **extra, option: value}]),
    ):
        with pytest.raises(jobfleet.ConfigError, match=f"{option}: must be .*{allowed}") as err:
            await call()
        assert_no_chain(err.value)
    assert await client.conn.dbsize() == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 10**30}, "max_attempts: must be a whole number from 1 to 1000"),
        ({"timeout": 1e-6}, "timeout: must be a finite number from 0.001"),
        ({"backoff": {"base": INF}}, "backoff.base: must be a finite number from 0 to 86400"),
        ({"backoff": {"cap": NAN}}, "backoff.cap: must be a finite number from 0 to 604800"),
    ],
)
async def test_other_numbers(client, options, message):
    with pytest.raises(jobfleet.ConfigError, match=message):
        await client.enqueue_many([{"name": "x", **options}])
    assert await client.conn.dbsize() == 0


@pytest.mark.parametrize("value", [0, 10, INF, NAN, 2**40])
def test_client_payload_limit(redis_url, value):
    with pytest.raises(jobfleet.ConfigError, match=r"max_payload_bytes: must be .*from 64 to"):
        jobfleet.Client(redis_url, max_payload_bytes=value)


async def test_wait_and_dead_letter_paging(client):
    with pytest.raises(jobfleet.ConfigError, match="timeout: must be a finite number from 0"):
        await client.wait("nope", timeout=NAN)
    with pytest.raises(jobfleet.ConfigError, match="limit: must be a whole number from 1"):
        await client.dlq.list(limit=-1)
    with pytest.raises(jobfleet.ConfigError, match="offset: must be a whole number from 0"):
        await client.dlq.list(offset=-5)


def cli(*args: str, redis_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("JOBFLEET_")}
    full.update(JOBFLEET_REDIS_URL=redis_url, **env)
    return subprocess.run(
        [sys.executable, "-m", "jobfleet", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["enqueue", "x", "{}", "--delay", "inf"], {}, "delay: must be a finite number"),
        (["enqueue", "x", "{}", "--delay", "nan"], {}, "delay: must be a finite number"),
        (["enqueue", "x", "{}", "--delay", "1e20"], {}, "delay: must be a finite number"),
        (["enqueue", "x", "--timeout", "inf"], {}, "timeout: must be a finite number"),
        (["enqueue", "x", "--dedup-key", "k", "--dedup-ttl", "inf"], {}, "dedup_ttl: must be"),
        (["enqueue", "x", "--max-attempts", str(10**30)], {}, "max_attempts: must be a whole"),
        (["dlq", "list", "--limit", "-1"], {}, "limit: must be a whole number from 1"),
        (["worker", "--handlers", "jobs"], {"JOBFLEET_GRACE_PERIOD": "inf"}, "grace_period"),
        (["worker", "--handlers", "jobs"], {"JOBFLEET_JOB_TIMEOUT": "nan"}, "job_timeout: must"),
        (["worker", "--handlers", "jobs", "-c", str(10**20)], {}, "concurrency: must be a whole"),
    ],
)
def test_cli_flags(redis_url, args, env, message):
    result = cli(*args, redis_url=redis_url, **env)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
