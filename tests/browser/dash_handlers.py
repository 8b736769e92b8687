"""Handlers the browser tier's workers run. Files steer them, so a test decides what happens
without racing the worker: a job with `gate` waits (active, 50 %) until that file exists; a
job with `fail_unless` fails with MailboxRefused until that file exists."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jobfleet


class MailboxRefused(Exception):
    """The error type the dead letters of these tests carry."""


@jobfleet.handler("send-email")
def send_email(job: jobfleet.JobContext) -> dict[str, Any]:
    # A plain function: the worker runs it in a thread, so the wait blocks nothing.
    payload: dict[str, Any] = job.payload
    gate = payload.get("gate")
    if gate:
        job.progress(50, "waiting for the gate", stage="gate")
        while not Path(gate).exists():
            time.sleep(0.05)
    heal = payload.get("fail_unless")
    if heal and not Path(heal).exists():
        raise MailboxRefused(f"mailbox {payload.get('to')} refused the message")
    return {"sent": payload.get("to")}
