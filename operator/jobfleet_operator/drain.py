"""Drain before delete: the scale-in state machine (pure; scaler.py does the I/O).

When the autoscaler wants k fewer pods, the operator picks the k pods with the fewest jobs in
flight, drains their workers (they finish what they hold, renew its leases, claim nothing),
and lowers `replicas` only once those pods hold nothing, so the ReplicaSet removes idle pods
and no job is cut short by SIGTERM. A drain that outlasts its timeout falls back to the
grace-period path; a scale-up cancels it. The state lives in the Queue's status, so a
restarted operator resumes it (see `Drain.to_status` / `Drain.from_status`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["none", "started", "waiting", "drained", "timed_out", "cancelled"]


@dataclass(frozen=True)
class Worker:
    """One live worker as Redis reports it."""

    id: str
    in_flight: int
    draining: bool

    @property
    def pod(self) -> str:
        return self.id.split(":", 1)[0]  # ids are <hostname>:<pid>:<nonce>, hostname = pod


@dataclass(frozen=True)
class Drain:
    """A scale-in waiting for its pods to become idle."""

    pods: tuple[str, ...]
    from_replicas: int
    to_replicas: int
    started: float  # wall-clock seconds (survives an operator restart, unlike monotonic)
    deadline: float

    def to_status(self) -> dict[str, Any]:
        return {
            "pods": list(self.pods),
            "fromReplicas": self.from_replicas,
            "toReplicas": self.to_replicas,
            "startedAt": _rfc3339(self.started),
            "deadline": _rfc3339(self.deadline),
        }

    @classmethod
    def from_status(cls, raw: Mapping[str, Any] | None) -> Drain | None:
        """The drain a previous operator left in the status, if any (None if unreadable)."""
        if not raw:
            return None
        try:
            return cls(
                pods=tuple(str(p) for p in raw["pods"]),
                from_replicas=int(raw["fromReplicas"]),
                to_replicas=int(raw["toReplicas"]),
                started=_parse(str(raw["startedAt"])),
                deadline=_parse(str(raw["deadline"])),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Step:
    """What to do this tick."""

    state: Drain | None
    outcome: Outcome
    drain: tuple[str, ...] = ()  # worker ids to drain (or keep drained: renews the flag)
    undrain: tuple[str, ...] = ()  # worker ids that may claim again
    replicas: int | None = None  # set the Deployment to this now (None: leave it)
    gone: tuple[str, ...] = ()  # pods that should be the ones removed (lowest deletion cost)
    busy: Mapping[str, int] = field(default_factory=dict)  # pod -> jobs still in flight
    message: str = ""


def by_pod(pods: Sequence[str], workers: Sequence[Worker]) -> dict[str, list[Worker]]:
    """Workers grouped by the pod they run in; pods without a registered worker get none."""
    out: dict[str, list[Worker]] = {p: [] for p in pods}
    for w in workers:
        if w.pod in out:
            out[w.pod].append(w)
    return out


def choose(pods: Mapping[str, Sequence[Worker]], k: int) -> tuple[str, ...]:
    """The k pods to remove: fewest jobs in flight first; among equals, pods with no
    registered worker (starting, or broken: the ReplicaSet would remove these first too),
    then by name (deterministic)."""
    ranked = sorted(pods, key=lambda p: (sum(w.in_flight for w in pods[p]), bool(pods[p]), p))
    return tuple(sorted(ranked[: max(k, 0)]))


# The ReplicaSet controller's order of removal (controller.ActivePodsWithRanks) puts three
# things before any pod-deletion-cost: unscheduled first, then Pending < Unknown < Running
# (another phase counts as Pending), then not ready.
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


@dataclass(frozen=True)
class Candidate:
    """A pod as the ReplicaSet controller ranks it when replicas drop."""

    name: str
    cost: int  # the pod-deletion-cost the operator gives it
    scheduled: bool = True
    phase: str = "Running"
    ready: bool = True

    @classmethod
    def of(cls, pod: Mapping[str, Any], cost: int) -> Candidate:
        status = pod.get("status") or {}
        conditions = status.get("conditions") or []
        return cls(
            name=pod["metadata"]["name"],
            cost=cost,
            scheduled=bool((pod.get("spec") or {}).get("nodeName")),
            phase=str(status.get("phase") or ""),
            ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
        )


def overruled(pods: Sequence[Candidate], k: int) -> tuple[str, ...]:
    """The pods the ReplicaSet controller would remove, when replicas drop by `k`, in place of
    pods with a lower deletion cost: a pod not ready yet (a worker claims before its
    readiness probe has passed), not running or not scheduled goes before any cost says.
    Empty when its choice costs no more than the cheapest one."""
    if k <= 0:
        return ()
    cheapest = sorted(p.cost for p in pods)[:k]
    theirs = sorted(
        pods, key=lambda p: (p.scheduled, _PHASE_RANK.get(p.phase, 0), p.ready, p.cost)
    )[:k]
    by_cost = sorted(theirs, key=lambda p: p.cost)
    return tuple(sorted(p.name for p, c in zip(by_cost, cheapest, strict=True) if p.cost > c))


def step(
    state: Drain | None,
    *,
    current: int,
    desired: int,
    pods: Mapping[str, Sequence[Worker]],
    now: float,
    timeout: float,
) -> Step:
    """Advance the scale-in by one tick.

    `current` is the Deployment's replicas, `desired` the autoscaler's decision, `pods` the
    live (not terminating) pods of the fleet with their workers, read from Redis *after* the
    previous tick's drain calls, `now` wall-clock seconds, `timeout` drainTimeoutSeconds
    (0: no drain, scale at once as before).
    """
    if state is None:
        if desired >= current or timeout <= 0:
            return Step(None, "none", replicas=desired if desired != current else None)
        gone = choose(pods, current - desired)
        if not gone:  # no pod to wait for (none listed yet): nothing can be interrupted
            return Step(None, "none", replicas=desired)
        ids = tuple(w.id for p in gone for w in pods[p])
        drain = Drain(gone, current, desired, now, now + timeout)
        busy = _busy(gone, pods)
        return Step(
            drain,
            "started",
            drain=ids,
            busy=busy,
            message=f"draining {_names(gone)} before scaling {current} -> {desired}"
            + (f" ({_jobs(busy)} in flight)" if busy else ""),
        )

    if desired > state.to_replicas or current != state.from_replicas:
        # More capacity is wanted than the drain would leave (or someone else resized the
        # fleet): every drained worker claims again, and the next tick plans afresh.
        ids = tuple(w.id for p in state.pods for w in pods.get(p, ()))
        return Step(
            None,
            "cancelled",
            undrain=ids,
            replicas=desired if desired != current else None,
            message=f"drain of {_names(state.pods)} cancelled: {desired} replicas wanted",
        )

    present = tuple(p for p in state.pods if p in pods)
    ids = tuple(w.id for p in present for w in pods[p])
    busy = _busy(present, pods)
    # Idle is only proof once Redis says the flag is set: the claim script checks it
    # atomically, so a drained worker with nothing in flight can take nothing more.
    unconfirmed = [w.id for p in present for w in pods[p] if not w.draining]
    if not busy and not unconfirmed:
        return Step(
            None,
            "drained",
            drain=ids,
            replicas=state.to_replicas,
            gone=state.pods,
            message=f"{_names(state.pods)} drained: scaling "
            f"{state.from_replicas} -> {state.to_replicas}",
        )
    if now >= state.deadline:
        return Step(
            None,
            "timed_out",
            drain=ids,
            replicas=state.to_replicas,
            gone=state.pods,
            busy=busy,
            message=f"drain of {_names(state.pods)} timed out after "
            f"{state.deadline - state.started:g}s with {_jobs(busy)} in flight; scaling "
            f"{state.from_replicas} -> {state.to_replicas}: those pods get SIGTERM and give "
            "back what they cannot finish within their grace period",
        )
    return Step(
        state,
        "waiting",
        drain=ids,
        busy=busy,
        message=f"draining {_names(state.pods)} before scaling {state.from_replicas} -> "
        f"{state.to_replicas}: {_jobs(busy)} in flight",
    )


def _busy(names: Sequence[str], pods: Mapping[str, Sequence[Worker]]) -> dict[str, int]:
    counts = {p: sum(w.in_flight for w in pods.get(p, ())) for p in names}
    return {p: n for p, n in counts.items() if n}


def _names(pods: Sequence[str]) -> str:
    return ", ".join(pods) if pods else "no pods"


def _jobs(busy: Mapping[str, int]) -> str:
    n = sum(busy.values())
    return f"{n} job{'s' if n != 1 else ''}"


def _rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
