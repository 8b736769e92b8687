"""The handler of bench/processes.py: 200 µs of CPU on the event loop, nothing else."""

from __future__ import annotations

import os
import time

import jobfleet

BODY_SECONDS = float(os.environ.get("BENCH_CPU_SECONDS", "0.0002"))


@jobfleet.handler("cpu")
async def cpu(job: jobfleet.JobContext) -> None:
    # Spin, not sleep: the point is a body that needs a core for its whole length.
    end = time.perf_counter() + BODY_SECONDS
    while time.perf_counter() < end:
        pass
