"""Jobs of batch handlers, held until their batch is full or its oldest job waited long enough."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from .engine import ClaimedJob
from .outbox import Outbox
from .registry import Handler
from .slots import Running, Slots

RunBatch = Callable[[Handler, list[ClaimedJob]], Coroutine[Any, Any, None]]


class Batches:
    """The batches filling per handler; a full (or old enough) one runs as one task."""

    __slots__ = ("_run", "_slots", "_waiting")

    def __init__(self, slots: Slots, run: RunBatch) -> None:
        self._slots = slots
        self._run = run
        self._waiting: dict[str, list[ClaimedJob]] = {}

    def add(self, handler: Handler, job: ClaimedJob) -> None:
        """Hold a job of a batch handler until its batch is full or the oldest waited long
        enough. It takes its slot now, and its lease is renewed meanwhile like any running
        job's."""
        batch = self._waiting.setdefault(handler.name, [])
        batch.append(job)
        self._slots.occupy(Running(job, None))
        if len(batch) >= (handler.batch_size or 1):
            self._flush(handler)
        elif len(batch) == 1:
            loop = asyncio.get_running_loop()
            loop.call_later(handler.max_wait, self._flush_if_waiting, handler, job.id)

    def _flush_if_waiting(self, handler: Handler, first: str) -> None:
        # Only if the job that armed this timer still heads the batch: a flush since then
        # started a new batch, whose own first job armed its own timer.
        batch = self._waiting.get(handler.name)
        if batch and batch[0].id == first:
            self._flush(handler)

    def _flush(self, handler: Handler) -> None:
        jobs = self._waiting.pop(handler.name, [])
        if not jobs:
            return
        task = asyncio.create_task(self._run(handler, jobs))
        for job in jobs:
            self._slots.running[job.id].task = task

    def forget_lost(self, running: Running) -> bool:
        """A lost lease: a job still waiting for its batch never started, so it just leaves
        (True); one already in a running batch is that batch's to finish (False)."""
        batch = self._waiting.get(running.job.name)
        if running.task is not None or batch is None:
            return False
        batch.remove(running.job)
        self._slots.forget(running.job.id)
        return True

    def release_all(self, outbox: Outbox) -> None:
        """On stop: jobs still waiting for their batch never started; give them back now."""
        for jobs in self._waiting.values():
            for job in jobs:
                self._slots.forget(job.id)
                outbox.release(job)
        self._waiting.clear()
