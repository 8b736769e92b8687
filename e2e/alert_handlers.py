"""Handlers the worker pods of e2e/test_alerts.py import (`e2e.alert_handlers`); no tests here."""

from __future__ import annotations

import asyncio
from typing import Any

import jobfleet


class CardDeclined(Exception):
    """The payment provider said no: the error type the failure metrics are labelled with."""


@jobfleet.handler("charge")
async def charge(job: jobfleet.JobContext) -> None:
    """Fails while the payload says the provider is broken (the cause the test removes)."""
    payload: dict[str, Any] = job.payload or {}
    if payload.get("broken"):
        raise CardDeclined("provider returned 402")


@jobfleet.handler("render")
async def render(job: jobfleet.JobContext) -> None:
    """Sleeps payload["s"] seconds: work that takes time without taking CPU."""
    payload: dict[str, Any] = job.payload or {}
    await asyncio.sleep(float(payload.get("s", 0)))
