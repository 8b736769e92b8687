"""Handlers that worker pods of the operator e2e tests import (`e2e.test_operator_jobs`).

Pods run as processes of this checkout (PYTHONPATH is the repo root), so the module is
importable by name; it holds no tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import jobfleet


@jobfleet.handler("nap")
async def nap(job: jobfleet.JobContext) -> None:
    """Sleep payload["s"] seconds: work that takes time without taking CPU."""
    payload: dict[str, Any] = job.payload or {}
    await asyncio.sleep(float(payload.get("s", 0)))
