"""The worker's signals on real runs: /metrics (parsed with prometheus_client's parser),
/status, the per-job log lines of a `jobfleet worker` process, and on_failure hooks."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import jobfleet
import pytest
import redis
from jobfleet import metrics
from jobfleet.worker import Worker
from jobs import LEAKY_TOKEN
from leaks import leaked
from prometheus_client.parser import text_string_to_metric_families
from redis_server import RedisServer
from waiting import until

PASSWORD = "Qv7pLm2xRt9sKw4n"
PAYLOAD_MARKER = "ada.lovelace@example.com"


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


async def get(worker: Worker, path: str) -> tuple[int, str]:
    assert worker.http is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{worker.http.port}{path}") as resp,
    ):
        return resp.status, await resp.text()


async def serving(worker: Worker) -> bool:
    return worker.http is not None and worker.http.port != 0 and worker.counters.claims > 0


def failing_registry() -> jobfleet.Registry:
    registry = jobfleet.Registry()

    @registry.handler("ok")
    async def ok(job: jobfleet.JobContext) -> None:
        pass

    @registry.handler("fail")
    async def fail(job: jobfleet.JobContext) -> None:
        # A new class per payload: more error types than the cap allows.
        raise type(f"Err{job.payload}", (Exception,), {})("boom")

    @registry.handler("gone")
    async def gone(job: jobfleet.JobContext) -> None:
        raise jobfleet.PermanentError("no such user")

    return registry


async def test_metrics_error_types_are_capped_and_depth_and_claims_are_exported(
    redis_url: str, run_worker: Callable[..., Worker]
) -> None:
    queue = "obs-metrics"
    n_types = metrics.MAX_ERROR_TYPES + 5
    async with jobfleet.Client(redis_url, queue=queue) as client:
        await client.enqueue_many(
            [{"name": "fail", "payload": i, "max_attempts": 1} for i in range(n_types)]
            + [{"name": "gone", "payload": None}] * 2
            + [{"name": "ok"}] * 3
        )
        worker = run_worker(failing_registry(), http_port=0, queue={"name": queue})

        async def all_done() -> bool:
            s = await client.inspect()
            return s.dead == n_types + 2 and s.completed == 3

        await until(all_done, what="every job finished")

        async def depth_reported() -> bool:
            _, text = await get(worker, "/metrics")
            dead = samples(text, "jobfleet_queue_jobs")
            return ({"queue": queue, "state": "dead"}, float(n_types + 2)) in dead

        await until(depth_reported, what="the dead-letter gauge")
    _, text = await get(worker, "/metrics")
    failures = [
        (labels, v)
        for labels, v in samples(text, "jobfleet_job_failures_total")
        if labels["queue"] == queue
    ]
    fail_types = {labels["error_type"]: v for labels, v in failures if labels["handler"] == "fail"}
    # The cap counts every type of the queue: PermanentError may have taken one slot first.
    assert len({lb["error_type"] for lb, _ in failures}) == metrics.MAX_ERROR_TYPES + 1
    assert fail_types[metrics.OTHER_ERROR_TYPE] >= n_types - metrics.MAX_ERROR_TYPES
    assert sum(fail_types.values()) == n_types
    assert {lb["outcome"] for lb, _ in failures} == {"dead"}
    gone = [v for lb, v in failures if lb["handler"] == "gone"]
    assert gone == [2.0]
    depth = {
        lb["state"]: v for lb, v in samples(text, "jobfleet_queue_jobs") if lb["queue"] == queue
    }
    assert set(depth) == set(metrics.DEPTH_STATES)
    assert depth["waiting"] == depth["delayed"] == depth["held"] == 0
    claims = samples(text, "jobfleet_redis_claim_seconds_count")
    assert next(v for lb, v in claims if lb["queue"] == queue) >= 1
    oldest = samples(text, "jobfleet_queue_oldest_wait_seconds")
    assert [v for lb, v in oldest if lb["queue"] == queue] == [0.0]


async def test_counters_and_a_closed_breaker_are_exported_before_anything_happens(
    redis_url: str, run_worker: Callable[..., Worker]
) -> None:
    # rate()/increase() never count a series' first sample: a Redis-error counter born at 1
    # would hide the first error, and a breaker that never tripped would show no data.
    queue = "obs-zero"
    breaker = {"scope": "queue", "failure_threshold": 1000, "window": 60}
    worker = run_worker(
        failing_registry(), http_port=0, queue={"name": queue, "circuit_breaker": breaker}
    )
    async with jobfleet.Client(redis_url, queue=queue) as client:
        await client.enqueue("ok")

        async def exported() -> bool:
            if not await serving(worker):
                return False
            _, text = await get(worker, "/metrics")
            return ({"queue": queue, "scope": "*"}, 0.0) in samples(text, "jobfleet_circuit_state")

        await until(exported, what="the closed breaker's state")
    _, text = await get(worker, "/metrics")
    assert ({"queue": queue}, 0.0) in samples(text, "jobfleet_redis_errors_total")


async def test_status_reports_the_worker_and_no_url(
    redis_url: str, run_worker: Callable[..., Worker]
) -> None:
    queue = "obs-status"
    worker = run_worker(failing_registry(), http_port=0, queue={"name": queue, "concurrency": 7})
    await until(lambda: serving(worker), what="the worker's first claim")
    status, body = await get(worker, "/status")
    assert status == 200
    doc = json.loads(body)
    assert doc["queue"] == queue
    assert doc["worker_id"] == worker.id
    assert doc["version"] == jobfleet.__version__
    assert doc["jobs_in_flight"] == 0
    assert doc["concurrency"] == 7
    assert doc["last_claim"] > 0
    assert doc["redis"]["state"] == "ok" and doc["redis"]["since"] > 0
    assert doc["draining"] is False and doc["stopping"] is False
    assert "redis://" not in body and "127.0.0.1" not in body


@pytest.fixture
def locked_redis() -> Iterator[str]:
    """A redis-server with a password; its URL carries it."""
    with RedisServer() as server:
        conn = redis.Redis(port=server.port)
        conn.config_set("requirepass", PASSWORD)
        conn.close()
        yield f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"


async def run_jobs_in_process(spawn_worker: Callable[..., Any], url: str, **settings: Any) -> str:
    """Complete one job and dead-letter another in a `jobfleet worker`; its output."""
    async with jobfleet.Client(url, queue="q") as client:
        done = await client.enqueue("sleep", {"s": 0, "to": PAYLOAD_MARKER})
        dead = await client.enqueue("leaky", {"to": PAYLOAD_MARKER}, max_attempts=1)
        worker = spawn_worker(url, **settings)
        await client.wait(done, timeout=60)
        await client.wait(dead, timeout=60)
    assert worker.terminate() == 0
    output: str = worker.output()
    return output


async def test_json_log_lines_carry_each_outcome_and_no_payload_or_secret(
    locked_redis: str, spawn_worker: Callable[..., Any]
) -> None:
    output = await run_jobs_in_process(
        spawn_worker, locked_redis, log_format="json", log_jobs="all"
    )
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    jobs = {line["name"]: line for line in lines if line["logger"] == "jobfleet.job"}
    assert set(jobs) == {"sleep", "leaky"}
    for name, outcome, error_type in (
        ("sleep", "completed", None),
        ("leaky", "dead", "ConnectionRefusedError"),
    ):
        line = jobs[name]
        assert line["queue"] == "q"
        assert line["outcome"] == outcome
        assert line["error_type"] == error_type
        assert line["attempt"] == 1
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        assert line["worker_id"].count(":") == 2
        assert len(line["job_id"]) == 32
        assert "payload" not in line
    assert PAYLOAD_MARKER not in output
    assert LEAKY_TOKEN not in output
    assert leaked(output, PASSWORD) == []
    # The other lines are JSON too: the start-up line names the queue, the URL redacted.
    assert any("on queue 'q'" in line["message"] for line in lines)


async def test_log_payload_puts_the_payload_in_the_job_line(
    locked_redis: str, spawn_worker: Callable[..., Any]
) -> None:
    output = await run_jobs_in_process(
        spawn_worker,
        locked_redis,
        env={
            "JOBFLEET_LOG_FORMAT": "json",
            "JOBFLEET_LOG_PAYLOAD": "1",
            "JOBFLEET_LOG_JOBS": "all",
        },
    )
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    jobs = {line["name"]: line for line in lines if line["logger"] == "jobfleet.job"}
    assert jobs["sleep"]["payload"] == {"s": 0, "to": PAYLOAD_MARKER}
    assert jobs["leaky"]["payload"] == {"to": PAYLOAD_MARKER}
    assert leaked(output, PASSWORD) == []
    assert LEAKY_TOKEN not in output


async def test_by_default_text_lines_for_every_outcome_but_completed(
    redis_url: str, spawn_worker: Callable[..., Any]
) -> None:
    output = await run_jobs_in_process(spawn_worker, redis_url)
    job_lines = [line for line in output.splitlines() if " jobfleet.job: " in line]
    assert len(job_lines) == 1
    assert "outcome=dead" in job_lines[0] and "outcome=completed" not in output


async def test_text_lines_for_every_job_when_asked(
    redis_url: str, spawn_worker: Callable[..., Any]
) -> None:
    output = await run_jobs_in_process(spawn_worker, redis_url, log_jobs="all")
    job_lines = [line for line in output.splitlines() if " jobfleet.job: " in line]
    assert len(job_lines) == 2
    (dead,) = [line for line in job_lines if "outcome=dead" in line]
    assert "name=leaky" in dead and "error_type=ConnectionRefusedError" in dead
    assert "attempt=1" in dead and "duration_ms=" in dead and "queue=q" in dead
    (done,) = [line for line in job_lines if "outcome=completed" in line]
    assert "error_type" not in done
    assert PAYLOAD_MARKER not in output and LEAKY_TOKEN not in output


async def test_on_failure_hooks_see_dead_letters_and_cannot_break_the_worker(
    redis_url: str, run_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    queue = "obs-hooks"
    registry = jobfleet.Registry()
    seen: list[tuple[jobfleet.FailedJob, BaseException]] = []
    every: list[tuple[str, int, bool]] = []

    @registry.handler("flaky")
    async def flaky(job: jobfleet.JobContext) -> None:
        if job.attempt < 2:
            raise jobfleet.RetryLater("not yet", delay=0)
        raise KeyError("missing")

    @registry.handler("ok")
    async def ok(job: jobfleet.JobContext) -> None:
        pass

    @registry.on_failure
    def record(job: jobfleet.FailedJob, exc: BaseException) -> None:  # sync: in a thread
        seen.append((job, exc))

    @registry.on_failure(when="every")
    async def on_every(job: jobfleet.FailedJob, exc: BaseException) -> None:
        every.append((job.id, job.attempt, job.dead))

    @registry.on_failure
    def explodes(job: jobfleet.FailedJob, exc: BaseException) -> None:
        raise RuntimeError("hook broke with secret sk_hook_3kd9")

    @registry.on_failure
    async def hangs(job: jobfleet.FailedJob, exc: BaseException) -> None:
        await asyncio.Event().wait()

    caplog.set_level(logging.WARNING, logger="jobfleet.hooks")
    async with jobfleet.Client(redis_url, queue=queue) as client:
        job_id = await client.enqueue("flaky", {"user": 42}, max_attempts=2)
        worker = run_worker(registry, queue={"name": queue})
        worker.hooks.timeout = 0.5  # the hanging hook's bound, shortened for the test
        info = await client.wait(job_id, timeout=60)
        assert info.state == jobfleet.JobState.DEAD

        async def hooks_ran() -> bool:
            return len(seen) == 1 and len(every) == 2 and "took longer" in caplog.text

        await until(hooks_ran, what="the hooks")
        # The worker goes on working after hooks that raise and hang.
        later = await client.enqueue("ok")
        assert (await client.wait(later, timeout=60)).state == jobfleet.JobState.COMPLETED
    ((job, exc),) = seen
    assert isinstance(exc, KeyError)
    assert (job.queue, job.id, job.name, job.attempt, job.max_attempts) == (
        queue,
        job_id,
        "flaky",
        2,
        2,
    )
    assert job.payload == {"user": 42} and job.error_type == "KeyError" and job.dead
    assert job.worker_id == worker.id
    assert sorted(every) == [(job_id, 1, False), (job_id, 2, True)]
    assert "explodes raised RuntimeError" in caplog.text
    assert "sk_hook" not in caplog.text  # a hook's message may hold what it was sending


async def test_worker_on_failure_sees_an_unknown_handler(redis_url: str) -> None:
    queue = "obs-hook-param"
    seen: list[tuple[jobfleet.FailedJob, BaseException]] = []
    settings = jobfleet.WorkerSettings(redis_url=redis_url, http_port=None, queue={"name": queue})
    worker = Worker(settings, jobfleet.Registry(), on_failure=lambda j, e: seen.append((j, e)))
    task = asyncio.create_task(worker.run())
    try:
        async with jobfleet.Client(redis_url, queue=queue) as client:
            job_id = await client.enqueue("nobody-handles-this", {"k": 1})
            info = await client.wait(job_id, timeout=60)
        assert info.state == jobfleet.JobState.DEAD

        async def called() -> bool:
            return len(seen) == 1

        await until(called, what="the hook")
    finally:
        worker.stop()
        await task
    ((job, exc),) = seen
    assert (job.id, job.name, job.error_type, job.dead) == (
        job_id,
        "nobody-handles-this",
        "UnknownHandler",
        True,
    )
    assert isinstance(exc, LookupError) and "nobody-handles-this" in str(exc)
