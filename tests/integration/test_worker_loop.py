"""`--event-loop uvloop` (jobfleet[uvloop]): real `jobfleet worker` processes run their
handlers on the loop asked for, and drain the queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jobfleet
import pytest
from waiting import until

if TYPE_CHECKING:  # `conftest` is another module when tests/admin is collected too
    from conftest import WorkerProcess

pytest.importorskip("uvloop")  # the dev extra has it (pyproject.toml): CI runs these

JOBS = 60


async def drain(client: jobfleet.Client, worker: WorkerProcess) -> list[tuple[int, str]]:
    """Enqueue JOBS loop-kind jobs, wait until all completed; the (pid, loop module) of each."""
    await client.enqueue_many([{"name": "loop-kind", "payload": i} for i in range(JOBS)])

    async def done() -> bool:
        assert worker.proc.poll() is None, worker.output()
        return (await client.inspect()).completed == JOBS

    await until(done, what=f"{JOBS} jobs completed")
    records = [str(r).split(":", 1) for r in await client.conn.lrange("loops", 0, -1)]
    return [(int(pid), kind) for pid, kind in records]


async def test_a_worker_started_with_event_loop_uvloop_runs_its_handlers_on_uvloop(
    client: jobfleet.Client, redis_url: str, spawn_worker
) -> None:
    worker = spawn_worker(redis_url, queue={"concurrency": 10}, args=("--event-loop", "uvloop"))
    ran = await drain(client, worker)
    assert len(ran) == JOBS
    assert {kind for _, kind in ran} == {"uvloop"}
    assert {pid for pid, _ in ran} == {worker.pid}
    assert worker.terminate() == 0


async def test_the_default_loop_is_asyncios(
    client: jobfleet.Client, redis_url: str, spawn_worker
) -> None:
    worker = spawn_worker(redis_url, queue={"concurrency": 10})
    ran = await drain(client, worker)
    assert {kind for _, kind in ran} == {"asyncio.unix_events"}
    assert worker.terminate() == 0


@pytest.mark.slow
async def test_the_children_of_processes_inherit_the_event_loop(
    client: jobfleet.Client, redis_url: str, spawn_worker
) -> None:
    """$JOBFLEET_EVENT_LOOP reaches the supervisor; its children get it with their settings
    on stdin, not from the environment (which they do not read)."""
    worker = spawn_worker(
        redis_url, processes=2, queue={"concurrency": 5}, env={"JOBFLEET_EVENT_LOOP": "uvloop"}
    )

    async def both_started() -> bool:
        # A child still importing when SIGTERM comes dies of it (and the pod exits 1).
        return worker.output().count("on queue 'q' at") == 2

    await until(both_started, what="both children started")
    ran = await drain(client, worker)
    assert {kind for _, kind in ran} == {"uvloop"}
    assert worker.pid not in {pid for pid, _ in ran}  # the supervisor runs no jobs
    assert worker.terminate() == 0, worker.output()
