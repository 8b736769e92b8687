"""The supervisor's restart policy (`ChildSupervisor._restart_delay`) on an injected clock:
the backoff per child, and the cap on restarts within RESTART_WINDOW that stops the pod."""

from __future__ import annotations

from pathlib import Path

from jobfleet.supervisor import (
    EXIT_CHILD_FAILED,
    MAX_RESTARTS,
    RESTART,
    RESTART_WINDOW,
    STEADY,
    ChildSupervisor,
)

KILLED = -9  # as asyncio reports a child killed by SIGKILL


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def supervisor(tmp_path: Path, processes: int = 1) -> tuple[ChildSupervisor, Clock]:
    clock = Clock()
    sup = ChildSupervisor(processes, scratch=tmp_path, clock=clock)
    for child in sup.children:
        child.was_ready = True
        child.started = clock.t
    return sup, clock


def test_more_than_max_restarts_within_the_window_stop_the_pod(tmp_path: Path) -> None:
    sup, clock = supervisor(tmp_path)
    child = sup.children[0]
    delays = []
    for _ in range(MAX_RESTARTS):
        clock.t += 1  # each run is short: the backoff grows
        delays.append(sup._restart_delay(child, KILLED))
        child.started = clock.t
    assert delays == [RESTART.delay(n) for n in range(1, MAX_RESTARTS + 1)]
    assert child.restarts == MAX_RESTARTS and not sup.stopping
    clock.t += 1
    assert sup._restart_delay(child, KILLED) is None
    assert sup.stopping and sup._fatal == EXIT_CHILD_FAILED
    assert child.restarts == MAX_RESTARTS  # no restart after giving up


def test_the_cap_counts_the_deaths_of_every_child(tmp_path: Path) -> None:
    sup, clock = supervisor(tmp_path, processes=2)
    for i in range(MAX_RESTARTS):
        clock.t += 1
        assert sup._restart_delay(sup.children[i % 2], KILLED) is not None
    clock.t += 1
    assert sup._restart_delay(sup.children[0], KILLED) is None
    assert sup._fatal == EXIT_CHILD_FAILED


def test_deaths_older_than_the_window_no_longer_count(tmp_path: Path) -> None:
    sup, clock = supervisor(tmp_path)
    child = sup.children[0]
    for _ in range(MAX_RESTARTS):
        clock.t += 1
        assert sup._restart_delay(child, KILLED) is not None
    # The first deaths leave the window: as many restarts are allowed again.
    clock.t += RESTART_WINDOW + 1
    for _ in range(MAX_RESTARTS):
        assert sup._restart_delay(child, KILLED) is not None
        clock.t += 0.1
    assert not sup.stopping
    assert sup._restart_delay(child, KILLED) is None


def test_a_steady_run_resets_the_backoff(tmp_path: Path) -> None:
    sup, clock = supervisor(tmp_path)
    child = sup.children[0]
    for _ in range(3):
        clock.t += 1
        sup._restart_delay(child, KILLED)
        child.started = clock.t
    assert child.failures == 3
    clock.t += STEADY
    assert sup._restart_delay(child, KILLED) == RESTART.delay(1)
    assert child.failures == 1


def test_a_fatal_exit_before_ready_stops_the_pod_with_its_code(tmp_path: Path) -> None:
    sup, _ = supervisor(tmp_path)
    child = sup.children[0]
    child.was_ready = False
    assert sup._restart_delay(child, 2) is None
    assert sup._fatal == 2 and sup.stopping
    # The same code after the child had been ready is an ordinary death: restarted.
    again, _ = supervisor(tmp_path)
    assert again._restart_delay(again.children[0], 2) == RESTART.delay(1)
