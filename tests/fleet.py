"""In-process workers for integration tests: started together, stopped together, and a
registry whose one handler records the ids of the jobs it ran."""

from __future__ import annotations

import asyncio
from typing import Any

import jobfleet
from jobfleet.worker import Worker


async def start_workers(
    n: int, settings: jobfleet.WorkerSettings, registry: jobfleet.Registry
) -> tuple[list[Worker], list[asyncio.Task[Any]]]:
    workers = [Worker(settings, registry) for _ in range(n)]
    return workers, [asyncio.create_task(w.run()) for w in workers]


async def stop_workers(workers: list[Worker], tasks: list[asyncio.Task[Any]]) -> None:
    """Every worker stops (draining what it holds), then each run returns."""
    for w in workers:
        w.stop()
    await asyncio.gather(*tasks)


def recorder(name: str) -> tuple[jobfleet.Registry, list[str]]:
    """A registry with handler `name`, and the list it appends each job's id to."""
    ran: list[str] = []
    registry = jobfleet.Registry()

    @registry.handler(name)
    async def record(job: jobfleet.JobContext) -> None:
        ran.append(job.id)

    return registry, ran
