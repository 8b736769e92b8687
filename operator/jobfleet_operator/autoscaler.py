"""The scaling function: a queue's load and history in, the fleet's size and the reason out."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .spec import PRIORITY_NAMES, AutoscalingSpec, QueueSpec, ScaleDownSpec, ScaleUpSpec

if TYPE_CHECKING:
    from jobfleet import QueueStats


_AUTO = AutoscalingSpec.model_fields
_UP = ScaleUpSpec.model_fields
_DOWN = ScaleDownSpec.model_fields
_QUEUE = QueueSpec.model_fields


@dataclass(frozen=True)
class Policy:
    """The scaling rules of one Queue (from `spec.autoscaling` and `spec.sla`)."""

    # The defaults are the Queue's (spec.py), so that a Policy() scales as a default Queue.
    min_replicas: int = _AUTO["min_replicas"].default
    max_replicas: int = _AUTO["max_replicas"].default
    target_backlog_per_replica: int = _QUEUE["concurrency"].default
    # Worker processes per pod (worker.processes): Redis counts workers, the fleet counts pods.
    workers_per_replica: int = 1
    sla_seconds: float | None = None
    sla_by_priority: Mapping[str, float] = field(default_factory=dict)
    scale_up_step: int = _UP["max_step_replicas"].default
    scale_up_percent: int = _UP["max_step_percent"].default
    stabilization_window: float = _DOWN["stabilization_window_seconds"].default
    cooldown: float = _AUTO["cooldown_seconds"].default
    enabled: bool = _AUTO["enabled"].default

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ValueError("need 0 <= min_replicas <= max_replicas and max_replicas >= 1")
        if min(self.target_backlog_per_replica, self.scale_up_step, self.workers_per_replica) < 1:
            raise ValueError(
                "target_backlog_per_replica, scale_up_step and workers_per_replica must be >= 1"
            )

    @classmethod
    def from_spec(cls, spec: QueueSpec) -> Policy:
        auto = spec.autoscaling
        by_priority: dict[str, float] = {}
        if spec.sla is not None and spec.sla.by_priority is not None:
            by_priority = {
                k: v for k, v in spec.sla.by_priority.model_dump().items() if v is not None
            }
        return cls(
            min_replicas=auto.min_replicas,
            max_replicas=auto.max_replicas,
            target_backlog_per_replica=spec.target_backlog_per_replica,
            workers_per_replica=spec.worker.processes_per_pod,
            sla_seconds=spec.sla.target_wait_seconds if spec.sla is not None else None,
            sla_by_priority=by_priority,
            scale_up_step=auto.scale_up.max_step_replicas,
            scale_up_percent=auto.scale_up.max_step_percent,
            stabilization_window=auto.scale_down.stabilization_window_seconds,
            cooldown=auto.cooldown_seconds,
            enabled=auto.enabled,
        )

    def clamp(self, n: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, n))


def _priority_name(key: str) -> str:
    """Stats may key priorities by name or number; the policy uses names."""
    if key.isdigit() and int(key) < len(PRIORITY_NAMES):
        return PRIORITY_NAMES[int(key)]
    return key.lower()


@dataclass(frozen=True)
class Load:
    """One reading of a queue (what `jobfleet.Client.inspect` reports)."""

    waiting: int
    in_flight: int
    oldest_wait: float = 0.0
    throughput: float = 0.0
    workers: int = 0
    waiting_by_priority: Mapping[str, int] = field(default_factory=dict)
    oldest_wait_by_priority: Mapping[str, float] = field(default_factory=dict)
    paused: bool = False
    held: int = 0  # waiting but held by a rate limit or open breaker: workers cannot help
    circuits: Mapping[str, str] = field(default_factory=dict)  # breaker scope -> state

    @classmethod
    def from_stats(cls, stats: QueueStats) -> Load:
        return cls(
            waiting=stats.waiting,
            in_flight=stats.active,
            oldest_wait=stats.oldest_wait,
            throughput=stats.throughput,
            workers=stats.workers,
            waiting_by_priority={
                _priority_name(k): v for k, v in stats.waiting_by_priority.items()
            },
            oldest_wait_by_priority={
                _priority_name(k): v for k, v in stats.oldest_wait_by_priority.items()
            },
            paused=stats.paused,
            held=stats.held,
            circuits={scope: c.state for scope, c in stats.circuits.items()},
        )

    @property
    def per_worker_rate(self) -> float | None:
        """Measured completions per second of one worker; None before anything completed."""
        if self.workers <= 0 or self.throughput <= 0:
            return None
        return self.throughput / self.workers


@dataclass(frozen=True)
class Memory:
    """What the scaler remembers between ticks (kept in the operator, lost on restart)."""

    recommendations: tuple[tuple[float, int], ...] = ()
    last_busy: float | None = None


@dataclass(frozen=True)
class Decision:
    """The fleet size to set now, and why."""

    replicas: int
    recommendation: int
    reason: str
    memory: Memory
    sla_breached: bool = False
    held: bool = False


def _sla_need(policy: Policy, load: Load, waiting: int, current: int) -> tuple[int, str, bool]:
    """Replicas the SLA asks for, why, and whether it is breached right now.

    Strict priority means a job waits for every job of its own and higher priority, so the
    drain time of level p counts the waiting jobs of levels 0..p.
    """
    targets: list[tuple[str, float, int, float]] = []
    if policy.sla_seconds is not None:
        targets.append(("queue", policy.sla_seconds, waiting, load.oldest_wait))
    if policy.sla_by_priority and not load.paused:
        ahead = 0
        for name in PRIORITY_NAMES:
            ahead += load.waiting_by_priority.get(name, 0)
            if name in policy.sla_by_priority:
                oldest = load.oldest_wait_by_priority.get(name, 0.0)
                level_waiting = load.waiting_by_priority.get(name, 0)
                targets.append(
                    (name, policy.sla_by_priority[name], ahead if level_waiting else 0, oldest)
                )
    per_worker = load.per_worker_rate
    # A pod of N worker processes completes N workers' worth.
    rate = None if per_worker is None else per_worker * policy.workers_per_replica
    need, why, breached = 0, "", False
    for label, target, queued, oldest in targets:
        if queued <= 0:
            continue
        if oldest >= target:
            breached = True
            # The fleet is behind; add one replica per tick on top of the drain estimate so a
            # breach with no rate measured yet still grows the fleet.
            if current + 1 > need:
                need = current + 1
                why = f"{label} SLA breached (oldest wait {oldest:.1f}s >= {target:g}s)"
        if rate is not None:
            # More replicas than queued jobs never drains faster; also guards tiny rates.
            per_fleet = queued / (rate * target) if rate * target > 0 else math.inf
            drain = queued if per_fleet >= queued else math.ceil(per_fleet)
            if drain > need:
                need = drain
                why = (
                    f"{label} SLA {target:g}s: {queued} waiting at {rate:.2f} jobs/s per replica"
                    f" needs {drain}"
                )
    return need, why, breached


def decide(policy: Policy, current: int, load: Load | None, memory: Memory, now: float) -> Decision:
    """Size the fleet.

    `current` is the Deployment's replica count, `load` None means Redis could not be read,
    `now` is a monotonic clock in seconds. Scale up at once by a bounded step; scale down only
    to the highest recommendation of the stabilization window; to zero only after `cooldown`
    seconds with nothing waiting or in flight; on errors hold the current size.
    """
    current = max(current, 0)
    if not policy.enabled:
        n = policy.min_replicas
        return Decision(n, n, f"autoscaling disabled: fixed at {n}", memory)
    if load is None:
        n = policy.clamp(current)
        return Decision(n, n, f"Redis unreachable: holding {n} replicas", memory, held=True)

    # A paused queue claims nothing, so its waiting jobs need no workers (in flight ones do).
    waiting = 0 if load.paused else load.waiting
    work = waiting + load.in_flight
    by_backlog = math.ceil(work / policy.target_backlog_per_replica)
    reason = (
        f"backlog {work} ({waiting} waiting, {load.in_flight} in flight) needs {by_backlog} at "
        f"{policy.target_backlog_per_replica} per replica"
    )
    if load.paused:
        reason += " (queue paused)"
    by_sla, sla_reason, breached = _sla_need(policy, load, waiting, current)
    raw = by_backlog
    if by_sla > raw:
        raw, reason = by_sla, sla_reason
    if work > 0 or load.held > 0:
        # A single job wakes a fleet at zero; held jobs need no more workers, but one to
        # start them when their rate-limit window or breaker lets them go.
        raw = max(raw, 1)
    recommendation = policy.clamp(raw)
    if recommendation != raw:
        bound = "maxReplicas" if raw > recommendation else "minReplicas"
        reason += f", bounded to {recommendation} by {bound}"

    last_busy = (
        now
        if work > 0 or load.held > 0
        else (memory.last_busy if memory.last_busy is not None else now)
    )
    window = policy.stabilization_window
    recs = tuple((t, r) for t, r in memory.recommendations if now - t < window)
    recs += ((now, recommendation),)
    new_memory = Memory(recommendations=recs, last_busy=last_busy)

    if recommendation > current:
        step = max(policy.scale_up_step, math.ceil(current * policy.scale_up_percent / 100))
        target = min(recommendation, current + step)
        if target < recommendation:
            reason += f", step limited to +{step}"
    elif recommendation < current:
        window_max = max(r for _, r in recs)
        target = min(current, max(recommendation, window_max))
        if target > recommendation:
            reason += f", held at {target} by the {window:g}s stabilization window"
        if target == 0 and now - last_busy < policy.cooldown:
            target = 1
            reason += f", kept at 1 until idle for {policy.cooldown:g}s"
    else:
        target = current
    # Remembered recommendations and `current` may predate a change of the bounds.
    target = policy.clamp(target)
    return Decision(target, recommendation, reason, new_memory, sla_breached=breached)


def scale_direction(current: int, decision: Decision) -> str:
    """`up`, `down` or `none`: the label of the decision's metric and event."""
    if decision.replicas > current:
        return "up"
    if decision.replicas < current:
        return "down"
    return "none"


def forget(memory: Memory) -> Memory:
    """Drop remembered recommendations (after a spec change the old ones no longer apply)."""
    return replace(memory, recommendations=())
