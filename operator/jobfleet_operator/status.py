"""A Queue's status as one tick sees it: conditions, counts and the Events to record (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import conditions as cond
from .autoscaler import Decision, Load
from .drain import Drain
from .spec import QueueSpec


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to record about the Queue."""

    type: str  # "Normal" or "Warning"
    reason: str
    note: str
    action: str


@dataclass(frozen=True)
class Seen:
    """What the previous ticks reported: Events and counters fire on a change, not per tick."""

    status: dict[str, Any]  # the status last written (or read at start)
    redis_ok: bool | None  # None before the first reading
    breached: bool  # the SLA was breached at the last reading


@dataclass(frozen=True)
class Report:
    """The status to write and what changed since the last one."""

    status: dict[str, Any]
    events: tuple[Event, ...]
    redis_ok: bool
    breached: bool
    new_breach: bool  # the SLA became breached at this reading: one more to count


def render(
    *,
    spec: QueueSpec,
    queue_name: str,
    deployment_name: str,
    generation: int | None,
    problem: tuple[str, str, int | None] | None,
    deployment_status: dict[str, Any],
    replicas: int,
    load: Load | None,
    decision: Decision,
    redis_error: str | None,
    drain: Drain | None,
    drain_message: str,
    seen: Seen,
    now: str,
) -> Report:
    """The Queue's status after one tick.

    `replicas` is the Deployment's size after this tick (what was set, else what it was);
    `problem` says why the latest spec is not in effect (reason, message, its generation);
    `now` (RFC 3339) stamps the conditions that change.
    """
    gen = generation if problem is None else problem[2]  # the refused spec's generation
    ready = int(deployment_status.get("readyReplicas") or 0)
    events: list[Event] = []

    updates = []
    if redis_error is None:
        updates.append(cond.condition(cond.REDIS_REACHABLE, "True", "Connected", "", gen, now))
    else:
        message = f"cannot read queue {queue_name}: {redis_error}; holding {replicas} replicas"
        updates.append(
            cond.condition(cond.REDIS_REACHABLE, "False", "RedisUnreachable", message, gen, now)
        )
        if seen.redis_ok is not False:  # once per outage, not every tick
            events.append(Event("Warning", "RedisUnreachable", message, "Inspect"))

    if problem is not None:
        ready_c = ("False", problem[0], problem[1])
    elif redis_error is not None:
        ready_c = ("False", "RedisUnreachable", "workers cannot reach Redis")
    elif decision.replicas == 0 and replicas == 0:
        ready_c = (
            "True",
            "ScaledToZero",
            "no work: the fleet is at zero and wakes on the next job",
        )
    elif ready >= 1:
        ready_c = ("True", "WorkersReady", f"{ready}/{replicas} workers ready")
    else:
        ready_c = ("False", "WorkersNotReady", f"0/{replicas} workers ready")
    updates.append(cond.condition(cond.READY, *ready_c, gen, now))  # type: ignore[arg-type]

    if drain is not None:
        updates.append(cond.condition(cond.SCALING, "True", "Draining", drain_message, gen, now))
    elif decision.replicas != int(deployment_status.get("replicas") or 0) or (
        decision.replicas != ready
    ):
        verb = "up" if decision.replicas > ready else "down"
        updates.append(
            cond.condition(
                cond.SCALING,
                "True",
                f"Scaling{verb.capitalize()}",
                f"{ready} ready, {decision.replicas} wanted",
                gen,
                now,
            )
        )
    elif decision.recommendation < decision.replicas:
        updates.append(
            cond.condition(cond.SCALING, "True", "Stabilizing", decision.reason, gen, now)
        )
    else:
        updates.append(cond.condition(cond.SCALING, "False", "Stable", decision.reason, gen, now))

    drop: tuple[str, ...] = ()
    breached, new_breach = seen.breached, False
    if spec.sla is not None and load is not None:
        target = spec.sla.target_wait_seconds
        if decision.sla_breached:
            msg = f"oldest wait {load.oldest_wait:.1f}s exceeds the {target:g}s target"
            updates.append(cond.condition(cond.SLA_MET, "False", "SLABreached", msg, gen, now))
            new_breach = not seen.breached
        elif load.paused and load.waiting and load.oldest_wait >= target:
            # Late because someone paused it, not because the fleet is short: say so, and
            # neither add workers nor count a breach (the alert would page for a decision).
            msg = (
                f"queue paused: oldest wait {load.oldest_wait:.1f}s exceeds the {target:g}s "
                "target; no workers are added while paused"
            )
            updates.append(cond.condition(cond.SLA_MET, "False", "QueuePaused", msg, gen, now))
        else:
            msg = f"oldest wait {load.oldest_wait:.1f}s within the {target:g}s target"
            updates.append(cond.condition(cond.SLA_MET, "True", "WithinTarget", msg, gen, now))
        breached = decision.sla_breached
    elif spec.sla is None:
        drop += (cond.SLA_MET,)
    # With an SLA but no reading, SLAMet keeps what it last said.

    old_conditions = list(seen.status.get("conditions") or [])
    status: dict[str, Any] = {
        **seen.status,
        "observedGeneration": gen,
        "conditions": cond.merge(old_conditions, updates, drop),
        "replicas": replicas,
        "readyReplicas": ready,
        "desiredReplicas": decision.replicas,
        "deployment": deployment_name,
        # None removes the field (merge patch): no drain, nothing to resume.
        "drain": drain.to_status() if drain is not None else None,
        "drainingPods": len(drain.pods) if drain is not None else 0,
    }
    if load is not None:
        status.update(
            backlog=load.waiting + load.in_flight,
            waiting=load.waiting,
            inFlight=load.in_flight,
            oldestWaitSeconds=round(load.oldest_wait, 1),
            throughput=round(load.throughput, 2),
            workers=load.workers,
            held=load.held,
            paused=load.paused,
            circuits=dict(load.circuits),
        )
    return Report(
        status=status,
        events=tuple(events),
        redis_ok=redis_error is None,
        breached=breached,
        new_breach=new_breach,
    )
