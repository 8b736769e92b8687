"""The drain-before-delete state machine (pure: pods, workers and clocks are plain values)."""

from __future__ import annotations

from jobfleet_operator.drain import Candidate, Drain, Worker, by_pod, choose, overruled, step

T0 = 1_800_000_000.0


def fleet(**in_flight: int) -> dict[str, list[Worker]]:
    """One undrained worker per pod with the given jobs in flight."""
    return {pod: [Worker(f"{pod}:1:x", n, False)] for pod, n in in_flight.items()}


def drained(pods: dict[str, list[Worker]], *names: str) -> dict[str, list[Worker]]:
    """The same fleet once Redis reports the named pods' workers drained."""
    return {
        p: [Worker(w.id, w.in_flight, w.draining or p in names) for w in ws]
        for p, ws in pods.items()
    }


def test_the_pods_with_the_fewest_jobs_in_flight_are_chosen() -> None:
    pods = fleet(a=3, b=0, c=1, d=0, e=5)
    assert choose(pods, 2) == ("b", "d")
    assert choose(pods, 3) == ("b", "c", "d")
    assert choose(pods, 0) == ()
    # A pod whose worker has not registered holds nothing: it goes first.
    assert choose({**pods, "f": []}, 1) == ("f",)


def test_workers_are_grouped_by_pod_and_strangers_ignored() -> None:
    workers = [
        Worker("a:1:x", 2, False),
        Worker("a:9:y", 1, False),  # a restarted container: two ids on one pod
        Worker("gone:1:z", 4, False),  # a pod that no longer exists
    ]
    grouped = by_pod(["a", "b"], workers)
    assert {p: [w.id for w in ws] for p, ws in grouped.items()} == {
        "a": ["a:1:x", "a:9:y"],
        "b": [],
    }


def test_a_pod_of_several_worker_processes_is_drained_whole() -> None:
    # --processes 2: two worker ids per pod (one hostname). Every one is drained, and the
    # pod goes only when all of them are drained and idle.
    pods = {
        "a": [Worker("a:10:x", 0, False), Worker("a:11:y", 2, False)],
        "b": [Worker("b:10:x", 3, False), Worker("b:11:y", 3, False)],
    }
    s = step(None, current=2, desired=1, pods=pods, now=T0, timeout=600)
    assert s.outcome == "started" and s.state is not None
    assert s.state.pods == ("a",) and set(s.drain) == {"a:10:x", "a:11:y"}
    one_confirmed = {**pods, "a": [Worker("a:10:x", 0, True), Worker("a:11:y", 0, False)]}
    s = step(s.state, current=2, desired=1, pods=one_confirmed, now=T0 + 1, timeout=600)
    assert s.outcome == "waiting" and set(s.drain) == {"a:10:x", "a:11:y"}
    one_busy = {**pods, "a": [Worker("a:10:x", 0, True), Worker("a:11:y", 1, True)]}
    s = step(s.state, current=2, desired=1, pods=one_busy, now=T0 + 2, timeout=600)
    assert s.outcome == "waiting" and s.busy == {"a": 1}
    # A child restarted mid-drain registers a new id: it is drained too before the pod goes.
    restarted = {**pods, "a": [Worker("a:10:x", 0, True), Worker("a:12:z", 0, False)]}
    s = step(s.state, current=2, desired=1, pods=restarted, now=T0 + 3, timeout=600)
    assert s.outcome == "waiting" and "a:12:z" in s.drain
    idle = {**pods, "a": [Worker("a:10:x", 0, True), Worker("a:12:z", 0, True)]}
    s = step(s.state, current=2, desired=1, pods=idle, now=T0 + 4, timeout=600)
    assert (s.outcome, s.replicas, s.gone) == ("drained", 1, ("a",))


def test_scale_in_drains_first_and_scales_once_the_pods_are_idle() -> None:
    pods = fleet(a=2, b=1, c=0)
    s = step(None, current=3, desired=1, pods=pods, now=T0, timeout=600)
    assert s.outcome == "started"
    assert s.replicas is None  # nothing is removed yet
    assert s.state is not None and s.state.pods == ("b", "c")
    assert set(s.drain) == {"b:1:x", "c:1:x"}
    assert s.busy == {"b": 1}

    # The flag is set but b still runs its job: wait (and keep the flags renewed).
    s2 = step(s.state, current=3, desired=1, pods=drained(pods, "b", "c"), now=T0 + 10, timeout=600)
    assert (s2.outcome, s2.replicas, s2.state) == ("waiting", None, s.state)
    assert set(s2.drain) == {"b:1:x", "c:1:x"}
    assert "1 job in flight" in s2.message

    idle = drained(fleet(a=2, b=0, c=0), "b", "c")
    s3 = step(s.state, current=3, desired=1, pods=idle, now=T0 + 30, timeout=600)
    assert (s3.outcome, s3.replicas, s3.state) == ("drained", 1, None)
    assert s3.gone == ("b", "c")
    assert s3.undrain == ()  # they stay drained until they are gone


def test_idle_is_not_enough_until_redis_confirms_the_drain() -> None:
    """Between the decision and the drain call a claim could still land: only a read that
    shows the flag set and nothing in flight proves the pod will take nothing more."""
    pods = fleet(a=0, b=0)
    s = step(None, current=2, desired=1, pods=pods, now=T0, timeout=600)
    assert s.outcome == "started"
    s2 = step(s.state, current=2, desired=1, pods=pods, now=T0 + 2, timeout=600)
    assert s2.outcome == "waiting"
    s3 = step(s.state, current=2, desired=1, pods=drained(pods, "a"), now=T0 + 4, timeout=600)
    assert (s3.outcome, s3.replicas) == ("drained", 1)


def test_a_new_worker_on_a_drained_pod_is_drained_too() -> None:
    """A container restart registers a new id on the pod: it must not claim either."""
    pods = fleet(a=1, b=0)
    s = step(None, current=2, desired=1, pods=pods, now=T0, timeout=600)
    assert s.state is not None and s.state.pods == ("b",)
    restarted = {**drained(pods, "b"), "b": [Worker("b:2:new", 0, False)]}
    s2 = step(s.state, current=2, desired=1, pods=restarted, now=T0 + 2, timeout=600)
    assert (s2.outcome, s2.drain) == ("waiting", ("b:2:new",))


def test_the_timeout_falls_back_to_the_grace_period_path() -> None:
    pods = drained(fleet(a=0, b=4), "a", "b")
    s = step(None, current=2, desired=0, pods=pods, now=T0, timeout=60)
    assert s.state is not None and s.state.pods == ("a", "b")
    s2 = step(s.state, current=2, desired=0, pods=pods, now=T0 + 59, timeout=60)
    assert s2.outcome == "waiting"
    s3 = step(s.state, current=2, desired=0, pods=pods, now=T0 + 60, timeout=60)
    assert (s3.outcome, s3.replicas, s3.state, s3.gone) == ("timed_out", 0, None, ("a", "b"))
    assert s3.busy == {"b": 4}
    assert "timed out after 60s with 4 jobs in flight" in s3.message


def test_a_scale_up_during_a_drain_cancels_it() -> None:
    pods = fleet(a=2, b=1, c=1)
    s = step(None, current=3, desired=1, pods=pods, now=T0, timeout=600)
    assert s.state is not None
    busy = drained(pods, *s.state.pods)
    up = step(s.state, current=3, desired=5, pods=busy, now=T0 + 5, timeout=600)
    assert (up.outcome, up.state, up.replicas) == ("cancelled", None, 5)
    assert set(up.undrain) == {f"{p}:1:x" for p in s.state.pods}
    # Wanting more than the drain would leave (but not more than now) cancels too: re-plan.
    more = step(s.state, current=3, desired=2, pods=busy, now=T0 + 5, timeout=600)
    assert (more.outcome, more.replicas) == ("cancelled", 2)
    # Wanting fewer keeps this drain going; the next one removes the rest.
    fewer = step(s.state, current=3, desired=0, pods=busy, now=T0 + 5, timeout=600)
    assert fewer.outcome == "waiting"


def test_someone_else_resizing_the_fleet_cancels_the_drain() -> None:
    pods = fleet(a=1, b=1)
    s = step(None, current=2, desired=1, pods=pods, now=T0, timeout=600)
    assert s.state is not None
    s2 = step(s.state, current=4, desired=1, pods=pods, now=T0 + 5, timeout=600)
    assert s2.outcome == "cancelled"


def test_a_pod_that_vanished_counts_as_drained() -> None:
    pods = fleet(a=1, b=1)
    s = step(None, current=2, desired=1, pods=pods, now=T0, timeout=600)
    assert s.state is not None
    left = {p: ws for p, ws in drained(pods).items() if p not in s.state.pods}
    s2 = step(s.state, current=2, desired=1, pods=left, now=T0 + 5, timeout=600)
    assert (s2.outcome, s2.replicas) == ("drained", 1)


def test_no_drain_when_off_or_not_shrinking() -> None:
    pods = fleet(a=1, b=1)
    assert step(None, current=2, desired=1, pods=pods, now=T0, timeout=0).replicas == 1
    assert step(None, current=2, desired=1, pods=pods, now=T0, timeout=0).outcome == "none"
    assert step(None, current=2, desired=2, pods=pods, now=T0, timeout=600).replicas is None
    assert step(None, current=2, desired=4, pods=pods, now=T0, timeout=600).replicas == 4


def test_the_state_round_trips_through_the_status() -> None:
    d = Drain(("b", "c"), 3, 1, T0, T0 + 600)
    raw = d.to_status()
    assert raw == {
        "pods": ["b", "c"],
        "fromReplicas": 3,
        "toReplicas": 1,
        "startedAt": "2027-01-15T08:00:00Z",
        "deadline": "2027-01-15T08:10:00Z",
    }
    assert Drain.from_status(raw) == d
    assert Drain.from_status(None) is None
    assert Drain.from_status({"pods": ["b"]}) is None  # unreadable: nothing to resume


def test_the_timeout_is_part_of_the_spec_with_a_bounded_range() -> None:
    import pytest
    from jobfleet_operator.spec import QueueSpec
    from pydantic import ValidationError

    base = {"redis": {"url": "redis://r:6379/0"}, "worker": {"image": "i", "handlers": ["m"]}}
    assert QueueSpec.model_validate(base).autoscaling.scale_in.drain_timeout_seconds == 600
    for bad in (-1, 86_401):
        with pytest.raises(ValidationError):
            QueueSpec.model_validate(
                {**base, "autoscaling": {"scaleIn": {"drainTimeoutSeconds": bad}}}
            )


def test_the_replicaset_order_puts_readiness_before_the_deletion_cost() -> None:
    busy, idle = Candidate("busy", 1, ready=False), Candidate("idle", 0)
    assert overruled([busy, idle], 1) == ("busy",)
    assert overruled([Candidate("busy", 1), idle], 1) == ()
    # Both not ready: the cost decides among them.
    assert overruled([busy, Candidate("idle", 0, ready=False)], 1) == ()
    # Not scheduled, then Pending, go before a running pod that is not ready.
    assert overruled([busy, Candidate("idle", 0, scheduled=False)], 1) == ()
    assert overruled([Candidate("busy", 1, phase="Pending"), idle], 1) == ("busy",)
    assert overruled([busy, idle], 2) == ()  # both go anyway
    assert overruled([busy, idle], 0) == ()


def test_a_candidate_is_read_from_the_pod_object() -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]},
    }
    assert Candidate.of(pod, 2) == Candidate("p", 2, scheduled=True, phase="Running", ready=False)
    assert Candidate.of({"metadata": {"name": "q"}}, 0) == Candidate(
        "q", 0, scheduled=False, phase="", ready=False
    )
