"""Retry delays: exponential or fixed, capped, with full jitter."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jobfleet import Backoff
from jobfleet.backoff import RECONNECT, Retries


@given(
    base=st.floats(0, 100),
    extra=st.floats(0, 1000),
    attempt=st.integers(1, 200),
    seed=st.integers(0, 2**32),
)
def test_exponential_delay_stays_within_zero_and_capped_doubling(base, extra, attempt, seed):
    policy = Backoff(base=base, cap=base + extra)
    delay = policy.delay(attempt, random.Random(seed))
    assert 0 <= delay <= min(policy.cap, base * 2.0**attempt)


def test_bound_doubles_until_the_cap():
    policy = Backoff(base=1, cap=10, jitter="none")
    assert [policy.delay(a) for a in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_fixed_ignores_the_attempt():
    policy = Backoff(kind="fixed", base=3, cap=10, jitter="none")
    assert {policy.delay(a) for a in range(1, 50)} == {3}


def test_full_jitter_spreads_delays():
    policy = Backoff(base=1, cap=100)
    rng = random.Random(7)
    delays = [policy.delay(5, rng) for _ in range(200)]
    assert min(delays) < 4 < max(delays) <= 16


def test_huge_attempt_numbers_do_not_overflow():
    assert Backoff(base=1, cap=60, jitter="none").delay(10_000) == 60


def test_cap_below_base_is_rejected():
    with pytest.raises(ValueError, match="cap"):
        Backoff(base=10, cap=1)


def test_retries_double_from_one_second_to_thirty_and_reset():
    retries = Retries(Backoff(base=1, cap=30, jitter="none"))
    assert [retries.next_delay() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    retries.reset()
    assert retries.next_delay() == 1


def test_retries_default_is_the_jittered_reconnect_schedule():
    retries = Retries()
    assert retries.backoff == RECONNECT
    delays = [retries.next_delay() for _ in range(20)]
    assert all(0 <= d <= min(30, 2**i) for i, d in enumerate(delays))
