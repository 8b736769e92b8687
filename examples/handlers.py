"""Handlers of the example Queues (examples/queues/): realistic shapes, demo-sized work.

Each handler sleeps a few milliseconds in place of its real I/O and fails now and then the
way the real dependency would, so a demo shows retries, rate limiting and dead letters
without any external service. Load it with `jobfleet worker --handlers examples.handlers`
(or `spec.worker.handlers: [examples.handlers]` in a Queue).
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

import jobfleet

# Failure odds, overridable so a demo can show more (or no) retries.
PAYMENT_GLITCH = float(os.environ.get("EXAMPLES_PAYMENT_GLITCH", "0.01"))
EMAIL_TEMPFAIL = float(os.environ.get("EXAMPLES_EMAIL_TEMPFAIL", "0.03"))


class PaymentGatewayTimeout(ConnectionError):
    """The card network did not answer in time: safe to retry, the charge is idempotent."""


@jobfleet.handler("charge-card", timeout=10)
async def charge_card(job: jobfleet.JobContext) -> dict[str, Any]:
    """Critical tier: a customer waits on this. Idempotent by job id (the gateway's key)."""
    order = job.payload["order"]
    if job.payload.get("amount_cents", 0) <= 0:
        # No retry can fix a malformed charge: dead-letter it with the reason.
        raise jobfleet.PermanentError(f"order {order}: amount must be positive")
    # A card authorisation is a network round trip to the acquirer: tens of milliseconds.
    await asyncio.sleep(random.uniform(0.04, 0.12))
    if random.random() < PAYMENT_GLITCH:
        raise PaymentGatewayTimeout(f"gateway timeout charging order {order}")
    return {"order": order, "charge": f"ch_{job.id[:12]}", "idempotency_key": job.id}


@jobfleet.handler("send-email")
async def send_email(job: jobfleet.JobContext) -> dict[str, Any]:
    """Email tier: the provider's API allows N requests per second (the Queue's rateLimit)."""
    await asyncio.sleep(random.uniform(0.005, 0.015))
    if random.random() < EMAIL_TEMPFAIL:
        # SMTP 421 / HTTP 429 from the provider: it says when to come back.
        raise jobfleet.RetryLater("provider busy (421)", delay=1.0)
    return {"to": job.payload["to"], "template": job.payload.get("template", "welcome")}


@jobfleet.handler("build-report", timeout=600)
def build_report(job: jobfleet.JobContext) -> dict[str, Any]:
    """Batch tier: CPU-ish work in a plain function (runs in the worker's thread pool)."""
    rows = int(job.payload.get("rows", 1000))
    stages = ("query", "aggregate", "render", "upload")
    for done, stage in enumerate(stages, start=1):
        # Stand-in for a query + aggregation; progress is visible with `jobfleet job <id>`.
        sum(i * i for i in range(rows * 10))
        job.progress(100 * done / len(stages), stage=stage)
    return {"report": job.payload.get("report", "daily"), "rows": rows}
