"""The worker's `/status` document: what an operator at 3 a.m. asks a single worker first.

Built from fields the worker keeps anyway (no Redis call per request). It names no URL, host
or credential: Redis is reported as a state, not an address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .version import VERSION


@dataclass(slots=True)
class RedisState:
    """Whether the worker's last call to Redis worked, and since when (Unix time)."""

    ok: bool = False
    since: float = 0.0

    def set(self, ok: bool, now: float) -> None:
        if ok != self.ok or not self.since:
            self.ok, self.since = ok, now


def document(
    *,
    queue: str,
    worker_id: str,
    in_flight: int,
    concurrency: int,
    last_claim: float | None,
    redis: RedisState,
    draining: bool,
    stopping: bool,
) -> dict[str, Any]:
    return {
        "queue": queue,
        "worker_id": worker_id,
        "version": VERSION,
        "jobs_in_flight": in_flight,
        "concurrency": concurrency,
        "last_claim": last_claim,
        "redis": {"state": "ok" if redis.ok else "down", "since": redis.since or None},
        "draining": draining,
        "stopping": stopping,
    }


def pod_document(
    *, processes: int, stopping: bool, children: list[dict[str, Any]]
) -> dict[str, Any]:
    """The supervisor's `/status` (`--processes N`): the pod's totals and, per child, its
    process state and the child's own document (None while it starts or restarts)."""
    docs = [c["status"] for c in children if c.get("status")]
    return {
        "version": VERSION,
        "processes": processes,
        "jobs_in_flight": sum(int(d["jobs_in_flight"]) for d in docs),
        "concurrency": sum(int(d["concurrency"]) for d in docs),
        "draining": any(d["draining"] for d in docs),  # the operator drains a pod whole
        "stopping": stopping,
        "children": children,
    }
