"""The scaling function: table-driven cases and properties (issue 4, acceptance 1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jobfleet_operator.autoscaler import Decision, Load, Memory, Policy, decide
from jobfleet_operator.spec import QueueSpec

NO_MEMORY = Memory()
P = Policy(
    min_replicas=1,
    max_replicas=8,
    target_backlog_per_replica=500,
    scale_up_step=4,
    scale_up_percent=100,
    stabilization_window=60,
    cooldown=120,
)


def run(
    policy: Policy, current: int, load: Load | None, memory: Memory = NO_MEMORY, now: float = 1000.0
) -> Decision:
    return decide(policy, current, load, memory, now)


@pytest.mark.parametrize(
    ("policy", "current", "load", "expected"),
    [
        # backlog / target, rounded up
        (P, 1, Load(waiting=0, in_flight=0), 1),
        (P, 1, Load(waiting=400, in_flight=100), 1),
        (P, 1, Load(waiting=401, in_flight=100), 2),
        # 5,000 waiting with target 500 wants 10, bounded by max 8; the first step adds 4
        (P, 1, Load(waiting=5000, in_flight=0), 5),
        (P, 5, Load(waiting=5000, in_flight=0), 8),
        (P, 8, Load(waiting=5000, in_flight=0), 8),
        # percent step: from 4 at 100 % the step is 4; from 6 it is 6
        (
            Policy(max_replicas=100, target_backlog_per_replica=1),
            6,
            Load(waiting=100, in_flight=0),
            12,
        ),
        # a single job wakes a fleet at zero
        (Policy(min_replicas=0, max_replicas=5), 0, Load(waiting=1, in_flight=0), 1),
        # min bound holds with no work
        (Policy(min_replicas=3, max_replicas=5), 3, Load(waiting=0, in_flight=0), 3),
        # scaling is disabled: min replicas, whatever the load
        (
            Policy(min_replicas=2, max_replicas=5, enabled=False),
            4,
            Load(waiting=10**6, in_flight=0),
            2,
        ),
        # paused queue: waiting jobs need no workers, in-flight ones still do
        (Policy(target_backlog_per_replica=10), 1, Load(waiting=1000, in_flight=0, paused=True), 1),
    ],
)
def test_table(policy: Policy, current: int, load: Load, expected: int) -> None:
    assert run(policy, current, load).replicas == expected


def test_held_jobs_keep_one_worker_but_add_none() -> None:
    policy = Policy(min_replicas=0, max_replicas=8, target_backlog_per_replica=10, cooldown=0)
    # 1000 jobs held by a rate limit: more workers would not start them sooner
    assert run(policy, 0, Load(waiting=0, in_flight=0, held=1000)).replicas == 1
    assert run(policy, 5, Load(waiting=0, in_flight=0, held=1000), now=10_000).replicas == 1


def test_five_thousand_jobs_reach_max_within_two_intervals() -> None:
    memory, current = Memory(), 1
    for tick in range(2):
        d = run(P, current, Load(waiting=5000, in_flight=0), memory, now=1000.0 + 2 * tick)
        memory, current = d.memory, d.replicas
    assert current == 8
    assert "maxReplicas" in d.reason


def test_redis_error_holds_current_size() -> None:
    d = run(Policy(min_replicas=0, max_replicas=8), 5, None)
    assert (d.replicas, d.held) == (5, True)
    assert "Redis unreachable" in d.reason
    # also at zero: nothing is invented, nothing removed
    assert run(Policy(min_replicas=0), 0, None).replicas == 0


def test_redis_error_keeps_memory() -> None:
    memory = Memory(recommendations=((990.0, 6),), last_busy=990.0)
    assert run(P, 6, None, memory).memory is memory


def test_scale_down_waits_for_stabilization_window() -> None:
    policy = Policy(
        min_replicas=1, max_replicas=8, target_backlog_per_replica=100, stabilization_window=60
    )
    d = run(policy, 1, Load(waiting=800, in_flight=0), now=0.0)
    d = run(policy, d.replicas, Load(waiting=800, in_flight=0), d.memory, now=2.0)
    assert d.replicas == 8
    # drained: the recommendation drops to 1 but the window still remembers 8
    memory = d.memory
    for t in (4.0, 30.0, 59.0):
        d = run(policy, 8, Load(waiting=0, in_flight=0), memory, now=t)
        assert d.replicas == 8, t
        assert d.recommendation == 1
        assert "stabilization" in d.reason
        memory = d.memory
    d = run(policy, 8, Load(waiting=0, in_flight=0), memory, now=62.1)
    assert d.replicas == 1


def test_scale_down_goes_to_window_max_not_below() -> None:
    policy = Policy(max_replicas=10, target_backlog_per_replica=10, stabilization_window=60)
    memory = Memory(recommendations=((10.0, 10), (40.0, 6), (50.0, 3)), last_busy=50.0)
    d = run(policy, 10, Load(waiting=10, in_flight=0), memory, now=75.0)  # the 10 expired
    assert d.replicas == 6


def test_scale_to_zero_only_after_cooldown() -> None:
    policy = Policy(
        min_replicas=0,
        max_replicas=4,
        target_backlog_per_replica=10,
        stabilization_window=0,
        cooldown=120,
    )
    d = run(policy, 2, Load(waiting=15, in_flight=0), now=0.0)
    assert d.replicas == 2
    memory = d.memory
    d = run(policy, 2, Load(waiting=0, in_flight=3), memory, now=10.0)  # still in flight
    assert d.replicas == 1
    memory = d.memory
    d = run(policy, 1, Load(waiting=0, in_flight=0), memory, now=100.0)  # idle for 90 s
    assert d.replicas == 1
    assert "idle" in d.reason
    d = run(policy, 1, Load(waiting=0, in_flight=0), d.memory, now=130.5)  # idle for 120.5 s
    assert d.replicas == 0


def test_fresh_operator_waits_a_cooldown_before_zero() -> None:
    # after a restart the scaler has no history: it must not assume the fleet was idle
    policy = Policy(min_replicas=0, stabilization_window=0, cooldown=120)
    d = run(policy, 3, Load(waiting=0, in_flight=0), Memory(), now=500.0)
    assert d.replicas == 1
    d = run(policy, 1, Load(waiting=0, in_flight=0), d.memory, now=621.0)
    assert d.replicas == 0


def test_sla_drain_time_sizes_the_fleet() -> None:
    # 600 waiting, each replica completes 10/s, SLA 5 s: 600 / (10 * 5) = 12 replicas,
    # although the backlog alone (target 500) asks for 2.
    policy = Policy(
        max_replicas=20, target_backlog_per_replica=500, sla_seconds=5.0, scale_up_step=20
    )
    load = Load(waiting=600, in_flight=0, oldest_wait=1.0, throughput=20.0, workers=2)
    d = run(policy, 2, load)
    assert d.replicas == 12
    assert "SLA" in d.reason
    assert not d.sla_breached


def test_a_pod_of_several_processes_counts_as_their_sum() -> None:
    # Redis counts 8 workers: 2 pods of 4 processes each, 10 jobs/s per worker. The fleet
    # is sized in pods: 40 jobs/s each, so 600 waiting within 5 s need 3 pods, not 12.
    policy = Policy(
        max_replicas=20,
        target_backlog_per_replica=500,
        sla_seconds=5.0,
        scale_up_step=20,
        workers_per_replica=4,
    )
    load = Load(waiting=600, in_flight=0, oldest_wait=1.0, throughput=80.0, workers=8)
    assert run(policy, 2, load).replicas == 3
    # And the backlog per pod is concurrency times processes (QueueSpec's default).
    from_spec = Policy.from_spec(
        QueueSpec.model_validate(
            {
                "redis": {"url": "redis://r:6379/0"},
                "worker": {"image": "i", "handlers": ["m"], "processes": 4},
                "concurrency": 10,
                "autoscaling": {"maxReplicas": 50, "scaleUp": {"maxStepReplicas": 50}},
            }
        )
    )
    assert (from_spec.workers_per_replica, from_spec.target_backlog_per_replica) == (4, 40)
    assert run(from_spec, 1, Load(waiting=400, in_flight=0)).replicas == 10
    with pytest.raises(ValueError, match="workers_per_replica"):
        Policy(workers_per_replica=0)


def test_sla_breach_without_rate_still_grows() -> None:
    policy = Policy(max_replicas=20, target_backlog_per_replica=500, sla_seconds=1.0)
    d = run(policy, 2, Load(waiting=5, in_flight=0, oldest_wait=3.0))
    assert d.replicas == 3
    assert d.sla_breached


def test_sla_per_priority_counts_jobs_ahead() -> None:
    # critical jobs wait behind no one; normal ones behind critical + high + normal
    policy = Policy(
        max_replicas=50,
        target_backlog_per_replica=10_000,
        sla_by_priority={"critical": 1.0},
        scale_up_step=50,
    )
    load = Load(
        waiting=1000,
        in_flight=0,
        throughput=10.0,
        workers=1,
        waiting_by_priority={"critical": 30, "normal": 970},
        oldest_wait_by_priority={"critical": 0.2, "normal": 10.0},
    )
    assert run(policy, 1, load).replicas == 3  # 30 / (10 * 1)
    # with a normal-level SLA the 30 critical jobs ahead count too: 1000 / (10 * 20) = 5
    normal = Policy(**{**policy.__dict__, "sla_by_priority": {"normal": 20.0}})
    assert run(normal, 1, load).replicas == 5


def test_load_from_stats_normalises_priorities() -> None:
    from jobfleet.stats import QueueStats

    stats = QueueStats(
        queue="q",
        time=0,
        waiting=5,
        waiting_by_priority={"0": 5},
        delayed=0,
        active=2,
        dead=0,
        completed=0,
        oldest_wait=1.5,
        oldest_wait_by_priority={"0": 1.5},
        completed_total=0,
        failed_total=0,
        dead_total=0,
        recovered_total=0,
        throughput=4.0,
        failure_rate=0.0,
        window=10.0,
        workers=2,
    )
    load = Load.from_stats(stats)
    assert load.waiting_by_priority == {"critical": 5}
    assert (load.waiting, load.in_flight, load.per_worker_rate) == (5, 2, 2.0)


# ---- properties -----------------------------------------------------------------------------

policies = st.builds(
    lambda mn, extra, target, sla, step, pct, window, cooldown: Policy(
        min_replicas=mn,
        max_replicas=max(mn, 1) + extra,
        target_backlog_per_replica=target,
        sla_seconds=sla,
        scale_up_step=step,
        scale_up_percent=pct,
        stabilization_window=window,
        cooldown=cooldown,
    ),
    st.integers(0, 5),
    st.integers(0, 30),
    st.integers(1, 1000),
    st.none() | st.floats(0.1, 100),
    st.integers(1, 10),
    st.integers(0, 300),
    st.floats(0, 300),
    st.floats(0, 600),
)
loads = st.builds(
    Load,
    waiting=st.integers(0, 100_000),
    in_flight=st.integers(0, 10_000),
    oldest_wait=st.floats(0, 1000),
    throughput=st.floats(0, 10_000),
    workers=st.integers(0, 50),
    paused=st.booleans(),
    held=st.integers(0, 1000),
)
memories = st.builds(
    lambda recs, busy: Memory(recommendations=tuple(sorted(recs)), last_busy=busy),
    st.lists(st.tuples(st.floats(0, 1000), st.integers(0, 40)), max_size=10),
    st.none() | st.floats(0, 1000),
)


@settings(max_examples=400, deadline=None)
@given(policies, st.integers(0, 40), st.none() | loads, memories)
def test_bounds_always_hold(
    policy: Policy, current: int, load: Load | None, memory: Memory
) -> None:
    d = decide(policy, current, load, memory, now=1000.0)
    assert policy.min_replicas <= d.replicas <= policy.max_replicas


@settings(max_examples=400, deadline=None)
@given(policies, st.integers(0, 40), loads, memories)
def test_never_zero_while_work_exists(
    policy: Policy, current: int, load: Load, memory: Memory
) -> None:
    d = decide(policy, current, load, memory, now=1000.0)
    work = (0 if load.paused else load.waiting) + load.in_flight
    if work > 0:
        assert d.replicas >= 1


@settings(max_examples=400, deadline=None)
@given(policies, st.integers(0, 40), loads, memories)
def test_never_below_window_max_during_stabilization(
    policy: Policy, current: int, load: Load, memory: Memory
) -> None:
    now = 1000.0
    d = decide(policy, current, load, memory, now)
    in_window = [r for t, r in memory.recommendations if now - t < policy.stabilization_window]
    if d.replicas < current and in_window:
        # (a recommendation above a since-lowered maxReplicas counts as that max)
        assert d.replicas >= min(max(in_window), policy.max_replicas)


@settings(max_examples=400, deadline=None)
@given(policies, st.integers(0, 40), loads, memories, st.integers(0, 100_000))
def test_monotone_in_backlog(
    policy: Policy, current: int, load: Load, memory: Memory, more: int
) -> None:
    bigger = Load(**{**load.__dict__, "waiting": load.waiting + more})
    small = decide(policy, current, load, memory, now=1000.0)
    large = decide(policy, current, bigger, memory, now=1000.0)
    assert large.replicas >= small.replicas


@settings(max_examples=200, deadline=None)
@given(policies, st.integers(0, 40), memories)
def test_holds_on_errors(policy: Policy, current: int, memory: Memory) -> None:
    d = decide(policy, current, None, memory, now=1000.0)
    if policy.enabled:
        assert d.replicas == policy.clamp(current)
        assert d.held


@settings(max_examples=200, deadline=None)
@given(policies, st.integers(0, 40), loads, memories)
def test_scale_up_is_immediate_and_bounded(
    policy: Policy, current: int, load: Load, memory: Memory
) -> None:
    d = decide(policy, current, load, memory, now=1000.0)
    if d.recommendation > current:
        step = max(policy.scale_up_step, -(-current * policy.scale_up_percent // 100))
        assert current < d.replicas <= max(current + step, policy.min_replicas)
