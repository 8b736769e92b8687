"""Sidecar mode: deliver jobs over HTTP to the user's container (any language) in the same pod.

The protocol, for a job named ``send-email``::

    POST {sidecar_url}/jobs/send-email
    Content-Type: application/json
    X-Jobfleet-Job-Id: <id>          X-Jobfleet-Attempt: <n>
    X-Jobfleet-Queue: <queue>        X-Jobfleet-Max-Attempts: <n>

    {"id": ..., "name": ..., "queue": ..., "attempt": ..., "max_attempts": ..., "payload": ...}

The response decides the outcome:

============================  ===============================================================
2xx                           completed; a JSON body becomes the job's result
429, 503 with Retry-After     retried after that many seconds (still counts as an attempt)
404                           dead-lettered: the sidecar has no handler for this name
other 4xx                     dead-lettered at once: the request itself is wrong, retrying
                              cannot help (the body, truncated, is the error message)
5xx, timeout, no connection   retried with the queue's backoff
============================  ===============================================================
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from .context import JobContext
from .errors import PermanentError, RetryLater
from .registry import Handler

MAX_ERROR_BODY = 2000


class SidecarError(Exception):
    """The sidecar answered with a server error or could not be reached (retried)."""


class SidecarHandlers:
    """A handler source that sends every job name to the sidecar."""

    def __init__(self, base_url: str, *, connect_timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None
        self._handlers: dict[str, Handler] = {}

    def get(self, name: str) -> Handler:
        handler = self._handlers.get(name)
        if handler is None:
            handler = self._handlers[name] = Handler(name=name, fn=self.deliver, is_async=True)
        return handler

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, job: JobContext) -> Any:
        """POST one job and map the response to an outcome (see the module docstring)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout)
            )
        body = {
            "id": job.id,
            "name": job.name,
            "queue": job.queue,
            "attempt": job.attempt,
            "max_attempts": job.max_attempts,
            "payload": job.payload,
        }
        headers = {
            "X-Jobfleet-Job-Id": job.id,
            "X-Jobfleet-Attempt": str(job.attempt),
            "X-Jobfleet-Max-Attempts": str(job.max_attempts),
            "X-Jobfleet-Queue": job.queue,
        }
        url = f"{self.base_url}/jobs/{job.name}"
        try:
            async with self._session.post(url, json=body, headers=headers) as resp:
                text = await resp.text()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except aiohttp.ClientError as exc:
            raise SidecarError(f"sidecar unreachable at {self.base_url}: {exc}") from None
        if 200 <= status < 300:
            if not text.strip():
                return None
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return text
        detail = text[:MAX_ERROR_BODY].strip()
        if status in (429, 503) and retry_after is not None:
            try:
                delay = max(float(retry_after), 0.0)
            except ValueError:
                delay = None
            raise RetryLater(f"sidecar asked to retry later ({status}): {detail}", delay=delay)
        if status == 404:
            raise PermanentError(f"sidecar has no handler for {job.name!r} (404): {detail}")
        if 400 <= status < 500:
            raise PermanentError(f"sidecar rejected the job ({status}): {detail}")
        raise SidecarError(f"sidecar failed ({status}): {detail}")
