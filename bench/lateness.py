"""Lateness of delayed jobs and retries: handler start - the job's run_at (issue 10).

Four scenarios, each on its own queue with a fresh worker process (defaults: concurrency 50,
IDLE_WAKE 5 s):

- delayed/idle: 1,000 jobs enqueued 10 at a time every 10 ms (so most arrive while the
  worker waits), each due at a uniformly random 1-11 s after its enqueue (`delay=`);
- delayed/busy: the same while 20 jobs that sleep through the whole scenario hold slots
  (30 stay free: the waker waits with them);
- retry/idle: 1,000 jobs enqueued the same way that fail their first attempt, retried after
  a fixed backoff of 10 s with full jitter (uniform 0-10 s after the failure);
- retry/busy: the same beside the 20 sleepers.

run_at is written by Redis (`now + delay` on its clock, for a retry at the failure's ack);
the handler stamps its start with time.time_ns(). Both are CLOCK_REALTIME on this machine.
Run it through run_one.py (a fresh redis-server) and read the one JSON line it prints:

    .venv/bin/python bench/run_one.py bench/.out/lateness.jsonl .venv/bin/python bench/lateness.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH, emit, latency_summary, note, redis_url, sync_redis, wait_until
from jobfleet import Backoff, Client, JobContext, Registry
from jobfleet.settings import QueueSettings, Retention, WorkerSettings
from jobfleet.worker import Worker

N = int(os.environ.get("BENCH_LATENESS_JOBS", "1000"))
SPREAD = 10.0  # seconds over which the due times spread
SLEEPERS = 20
BACKOFF = Backoff(kind="fixed", base=SPREAD, cap=SPREAD, jitter="full")

registry = Registry()
_stamps = open(os.environ.get("BENCH_LATENESS_FILE", os.devnull), "a", buffering=1)  # noqa: SIM115


@registry.handler("late")
async def late(job: JobContext) -> None:
    """A delayed job: stamp the start."""
    _stamps.write(f"{job.id} {time.time_ns()}\n")


@registry.handler("flaky")
async def flaky(job: JobContext) -> None:
    """Fails its first attempt (retried after BACKOFF); stamps the start of the retry."""
    if job.attempt == 1:
        raise ValueError("first attempt fails")
    _stamps.write(f"{job.id} {time.time_ns()}\n")


@registry.handler("sleep")
async def sleep(job: JobContext) -> None:
    """Holds a slot for the whole scenario: the worker is busy, with slots still free."""
    await asyncio.sleep(3600)


async def serve(queue: str) -> None:
    settings = WorkerSettings(
        redis_url=redis_url(),
        queue=QueueSettings(name=queue, retention=Retention(completed_count=10_000_000)),
        http_port=None,
    )
    worker = Worker(settings, registry)
    worker.install_signals()
    task = asyncio.create_task(worker.run())
    while worker.counters.claims < 1:  # noqa: ASYNC110 - the Worker has no ready event
        await asyncio.sleep(0.005)
    print("READY", flush=True)
    await task


def spawn_worker(queue: str, stamps: Path) -> subprocess.Popen[str]:
    """A worker process on `queue`, returned once it made its first claim."""
    env = dict(os.environ, BENCH_LATENESS_FILE=str(stamps))
    cmd = [sys.executable, str(BENCH / "lateness.py"), "worker", queue]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    while proc.stdout.readline().strip() != "READY":
        pass
    return proc


def stamped(path: Path) -> int:
    return len(path.read_text().splitlines())


async def scenario(client: Client, kind: str, busy: bool) -> dict[str, float]:
    queue = f"{kind}-{'busy' if busy else 'idle'}"
    conn = sync_redis()
    with tempfile.NamedTemporaryFile("r", suffix=".stamps") as stamps:
        path = Path(stamps.name)
        proc = spawn_worker(queue, path)
        if busy:
            await client.enqueue_many([{"name": "sleep"}] * SLEEPERS, queue=queue)
            wait_until(lambda: conn.zcard(f"jf:{{{queue}}}:active") >= SLEEPERS, 30, 0.01)
        await asyncio.sleep(0.5)  # idle: the worker waits in Redis
        ids: list[str] = []
        rng = random.Random(1)
        for _ in range(N // 10):  # a steady trickle, not one burst of 1,000 first attempts
            if kind == "delayed":
                batch = [
                    {"name": "late", "delay": rng.uniform(1.0, 1.0 + SPREAD)} for _ in range(10)
                ]
            else:
                batch = [{"name": "flaky", "backoff": BACKOFF}] * 10
            ids += await client.enqueue_many(batch, queue=queue)
            await asyncio.sleep(0.01)
        with contextlib.suppress(TimeoutError):  # a missing job is counted, not fatal
            wait_until(lambda: stamped(path) >= N, SPREAD + 60, 0.1)
        proc.send_signal(signal.SIGKILL)  # the sleepers would hold a graceful stop
        proc.wait()
        started = dict(line.split() for line in stamps.read().splitlines())
    pipe = conn.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(f"jf:{{{queue}}}:job:{job_id}", ["run_at", "started_at"])
    fields = dict(zip(ids, pipe.execute(), strict=True))
    conn.close()
    # A retry whose jittered delay rounded to 0 ms was made ready at once: it has no run_at.
    late = {
        i: (int(t) / 1e6 - int(fields[i][0]), int(fields[i][1]) - int(fields[i][0]))
        for i, t in started.items()
        if fields[i][0] is not None
    }
    ms = [start for start, _ in late.values()]
    worst = sorted(late.values(), reverse=True)[:5]
    # Where the worst lateness went: before the claim (Redis clock) or after it.
    note(f"{queue} worst (start - run_at, claim - run_at) ms: {worst}")
    summary = latency_summary(ms)
    out = {
        f"{queue}_{k.removeprefix('latency_')}": v for k, v in summary.items() if k != "latency_n"
    }
    out[f"{queue}_n"] = len(ms)
    out[f"{queue}_missing"] = N - len(started)
    out[f"{queue}_min_ms"] = round(min(ms), 3)
    note(f"{queue}: {out}")
    return out


async def run() -> dict[str, object]:
    client = Client(redis_url(), queue="warmup")
    await client.enqueue("noop", {})  # loads the scripts (one-time cost)
    result: dict[str, object] = {"system": "jobfleet", "bench": "lateness", "n": N}
    for kind in ("delayed", "retry"):
        for busy in (False, True):
            result |= await scenario(client, kind, busy)
    await client.aclose()
    return result


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        asyncio.run(serve(sys.argv[2]))
        return
    emit(asyncio.run(run()))


if __name__ == "__main__":
    main()
