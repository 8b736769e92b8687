"""A Queue's status from one tick's readings: conditions, counts and Events (pure, no I/O)."""

from __future__ import annotations

from typing import Any

from jobfleet_operator.autoscaler import Decision, Load, Memory
from jobfleet_operator.drain import Drain
from jobfleet_operator.spec import QueueSpec
from jobfleet_operator.status import Event, Report, Seen, render

SPEC = QueueSpec.model_validate(
    {
        "redis": {"url": "redis://redis:6379/0"},
        "worker": {"image": "acme/jobs:1", "handlers": ["acme.jobs"]},
        "sla": {"targetWaitSeconds": 5},
    }
)
NO_SLA = QueueSpec.model_validate(
    {
        "redis": {"url": "redis://redis:6379/0"},
        "worker": {"image": "acme/jobs:1", "handlers": ["acme.jobs"]},
    }
)
T0, T1 = "2026-12-01T10:00:00Z", "2026-12-01T10:00:05Z"
FIRST = Seen(status={}, redis_ok=None, breached=False)


def decision(replicas: int, recommendation: int | None = None, **kw: Any) -> Decision:
    rec = replicas if recommendation is None else recommendation
    return Decision(replicas, rec, kw.pop("reason", "steady"), Memory(), **kw)


def report(**kw: Any) -> Report:
    args: dict[str, Any] = {
        "spec": SPEC,
        "queue_name": "emails",
        "deployment_name": "emails-jobfleet",
        "generation": 3,
        "problem": None,
        "deployment_status": {"replicas": 2, "readyReplicas": 2},
        "replicas": 2,
        "load": Load(waiting=4, in_flight=2, oldest_wait=1.26, throughput=3.333, workers=2),
        "decision": decision(2),
        "redis_error": None,
        "drain": None,
        "drain_message": "",
        "seen": FIRST,
        "now": T0,
    }
    return render(**{**args, **kw})


def conditions(r: Report) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in r.status["conditions"]}


def test_a_steady_fleet_reports_its_counts_and_ready_conditions():
    r = report()
    assert conditions(r) == {
        "Ready": ("True", "WorkersReady", "2/2 workers ready"),
        "Scaling": ("False", "Stable", "steady"),
        "SLAMet": ("True", "WithinTarget", "oldest wait 1.3s within the 5s target"),
        "RedisReachable": ("True", "Connected", ""),
    }
    assert [c["type"] for c in r.status["conditions"]] == [
        "Ready",
        "Scaling",
        "SLAMet",
        "RedisReachable",
    ]
    assert {c["observedGeneration"] for c in r.status["conditions"]} == {3}
    s = r.status
    assert (s["observedGeneration"], s["replicas"], s["readyReplicas"]) == (3, 2, 2)
    assert (s["desiredReplicas"], s["deployment"]) == (2, "emails-jobfleet")
    assert (s["backlog"], s["waiting"], s["inFlight"], s["workers"]) == (6, 4, 2, 2)
    assert (s["oldestWaitSeconds"], s["throughput"]) == (1.3, 3.33)
    assert (s["drain"], s["drainingPods"]) == (None, 0)
    assert (r.events, r.redis_ok, r.breached, r.new_breach) == ((), True, False, False)


def test_redis_unreachable_warns_once_and_keeps_the_last_counts():
    seen = Seen(status={"waiting": 9, "conditions": []}, redis_ok=True, breached=False)
    r = report(load=None, redis_error="connection refused", seen=seen)
    message = "cannot read queue emails: connection refused; holding 2 replicas"
    assert conditions(r)["RedisReachable"] == ("False", "RedisUnreachable", message)
    assert conditions(r)["Ready"] == ("False", "RedisUnreachable", "workers cannot reach Redis")
    assert r.events == (Event("Warning", "RedisUnreachable", message, "Inspect"),)
    assert r.redis_ok is False and r.status["waiting"] == 9
    again = report(load=None, redis_error="connection refused", seen=Seen(r.status, False, False))
    assert again.events == ()


def test_an_sla_breach_counts_once_and_keeps_the_transition_time():
    late = Load(waiting=50, in_flight=2, oldest_wait=12.0)
    r = report(load=late, decision=decision(4, sla_breached=True))
    assert conditions(r)["SLAMet"] == (
        "False",
        "SLABreached",
        "oldest wait 12.0s exceeds the 5s target",
    )
    assert (r.breached, r.new_breach) == (True, True)
    again = report(
        load=late, decision=decision(4, sla_breached=True), seen=Seen(r.status, True, True), now=T1
    )
    assert (again.breached, again.new_breach) == (True, False)
    sla = next(c for c in again.status["conditions"] if c["type"] == "SLAMet")
    assert sla["lastTransitionTime"] == T0


def test_a_paused_queue_past_its_sla_says_paused_and_counts_no_breach():
    late = Load(waiting=50, in_flight=0, oldest_wait=12.0, paused=True)
    r = report(load=late, decision=decision(0))
    assert conditions(r)["SLAMet"] == (
        "False",
        "QueuePaused",
        "queue paused: oldest wait 12.0s exceeds the 5s target; no workers are added while paused",
    )
    assert (r.breached, r.new_breach) == (False, False)
    early = Load(waiting=50, in_flight=0, oldest_wait=1.0, paused=True)
    assert conditions(report(load=early, decision=decision(0)))["SLAMet"][:2] == (
        "True",
        "WithinTarget",
    )


def test_without_an_sla_the_condition_goes_and_without_a_reading_it_stays():
    seen = Seen(status=report().status, redis_ok=True, breached=True)
    assert "SLAMet" not in conditions(report(spec=NO_SLA, seen=seen))
    kept = report(load=None, redis_error="down", seen=seen)
    assert conditions(kept)["SLAMet"] == conditions(report())["SLAMet"]
    assert kept.breached is True


def test_scaling_reasons():
    up = report(decision=decision(4), deployment_status={"replicas": 2, "readyReplicas": 2})
    assert conditions(up)["Scaling"] == ("True", "ScalingUp", "2 ready, 4 wanted")
    down = report(decision=decision(1), replicas=1)
    assert conditions(down)["Scaling"] == ("True", "ScalingDown", "2 ready, 1 wanted")
    holding = report(decision=decision(2, recommendation=1, reason="window holds 2"))
    assert conditions(holding)["Scaling"] == ("True", "Stabilizing", "window holds 2")


def test_a_drain_is_reported_as_draining_and_kept_for_a_restart():
    drain = Drain(("emails-a",), 3, 2, 1_800_000_000.0, 1_800_000_300.0)
    r = report(drain=drain, drain_message="draining emails-a", replicas=3)
    assert conditions(r)["Scaling"] == ("True", "Draining", "draining emails-a")
    assert r.status["drain"] == drain.to_status()
    assert r.status["drainingPods"] == 1


def test_zero_replicas_and_not_ready_workers():
    zero = report(
        decision=decision(0),
        replicas=0,
        load=Load(waiting=0, in_flight=0),
        deployment_status={},
    )
    assert conditions(zero)["Ready"][:2] == ("True", "ScaledToZero")
    starting = report(deployment_status={"replicas": 2})
    assert conditions(starting)["Ready"] == ("False", "WorkersNotReady", "0/2 workers ready")


def test_a_refused_spec_speaks_of_its_own_generation():
    r = report(problem=("InvalidSpec", "bad handlers", 5))
    assert conditions(r)["Ready"] == ("False", "InvalidSpec", "bad handlers")
    assert r.status["observedGeneration"] == 5
