"""Cron tick arithmetic, missed-tick decisions and validation: pure functions, no I/O."""

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jobfleet.cron import (
    MIN_DEDUP_TTL,
    CompiledSchedule,
    compile_schedule,
    compile_schedules,
    plan_ticks,
)
from jobfleet.errors import ConfigError
from jobfleet.keys import cron_tick
from jobfleet.settings import CronSchedule


def sched(cron: str, tz: str = "UTC", **kw) -> CompiledSchedule:
    return compile_schedule(
        CronSchedule(name=kw.pop("name", "s"), cron=cron, timezone=tz, job="j", **kw)
    )


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def forward(s: CompiledSchedule, after: float, n: int) -> list[int]:
    out = []
    for _ in range(n):
        after = s.next_tick(after)
        out.append(after)
    return out


# -- next tick -----------------------------------------------------------------------------


def test_next_tick_is_strictly_after():
    s = sched("* * * * *")
    assert s.next_tick(utc(2026, 1, 1, 12, 0, 30)) == utc(2026, 1, 1, 12, 1)
    assert s.next_tick(utc(2026, 1, 1, 12, 1)) == utc(2026, 1, 1, 12, 2)
    assert s.next_tick(utc(2026, 1, 1, 12, 1) - 0.001) == utc(2026, 1, 1, 12, 1)


def test_ticks_fall_on_the_wall_clock_of_the_time_zone():
    s = sched("0 9 * * *", "Europe/Berlin")
    assert s.next_tick(utc(2026, 1, 15)) == utc(2026, 1, 15, 8)  # CET = UTC+1
    assert s.next_tick(utc(2026, 7, 15)) == utc(2026, 7, 15, 7)  # CEST = UTC+2
    ny = sched("30 17 * * 1-5", "America/New_York")
    assert ny.next_tick(utc(2026, 1, 16, 23)) == utc(2026, 1, 19, 22, 30)  # Fri -> Mon, EST


def test_spring_forward_hourly_skips_the_missing_hour():
    # Europe/Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    s = sched("0 * * * *", "Europe/Berlin")
    ticks = forward(s, utc(2026, 3, 28, 22, 30), 4)
    assert ticks == [
        utc(2026, 3, 28, 23),
        utc(2026, 3, 29, 0),
        utc(2026, 3, 29, 1),
        utc(2026, 3, 29, 2),
    ]
    assert {b - a for a, b in itertools.pairwise(ticks)} == {3600}


def test_spring_forward_a_time_that_does_not_exist_fires_at_the_change():
    s = sched("30 2 * * *", "Europe/Berlin")
    assert forward(s, utc(2026, 3, 28, 12), 3) == [
        utc(2026, 3, 29, 1),  # 03:00 CEST, the first instant after 02:30 would have been
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]


def test_fall_back_fixed_time_fires_once_and_hourly_fires_in_both_passes():
    # Europe/Berlin 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00 UTC).
    daily = sched("30 2 * * *", "Europe/Berlin")
    assert forward(daily, utc(2026, 10, 24, 12), 2) == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
    ]
    hourly = sched("0 * * * *", "Europe/Berlin")
    ticks = forward(hourly, utc(2026, 10, 24, 23, 30), 4)
    assert ticks == [
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 1),
        utc(2026, 10, 25, 2),
        utc(2026, 10, 25, 3),
    ]
    midnight = sched("@daily", "America/Havana")  # Cuba changes its clocks at midnight
    once = forward(midnight, utc(2026, 10, 31), 4)
    assert len(set(once)) == 4
    assert all(b - a >= 23 * 3600 for a, b in itertools.pairwise(once))


def test_sixth_field_is_seconds():
    every = sched("* * * * * *")
    assert forward(every, 1000.0, 3) == [1001, 1002, 1003]
    assert every.next_tick(1000.4) == 1001
    fifteen = sched("* * * * * */15")
    assert forward(fifteen, 1000.0, 3) == [1005, 1020, 1035]
    at_ten = sched("5 * * * * 10")  # minute 5, second 10
    assert at_ten.next_tick(utc(2026, 1, 1, 12)) == utc(2026, 1, 1, 12, 5, 10)


def test_macros():
    assert sched("@hourly").next_tick(utc(2026, 1, 1, 12, 30)) == utc(2026, 1, 1, 13)
    assert sched("@daily", "Asia/Tokyo").next_tick(utc(2026, 1, 1, 16)) == utc(2026, 1, 2, 15)
    assert sched("@HOURLY").expr == "@hourly"


@pytest.mark.parametrize(
    ("cron", "tz", "start"),
    [
        ("0 * * * *", "Europe/Berlin", utc(2026, 3, 28, 20)),
        ("0 * * * *", "Europe/Berlin", utc(2026, 10, 24, 20)),
        ("*/20 * * * *", "America/New_York", utc(2026, 11, 1, 3)),
        ("30 2 * * *", "Europe/Berlin", utc(2026, 3, 27)),
        ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 23)),
        ("15 1,2,3 * * *", "Europe/Berlin", utc(2026, 10, 24)),
        ("* * * * * */7", "UTC", 1000),
        ("@daily", "America/Havana", utc(2026, 10, 30)),
    ],
)
def test_prev_tick_mirrors_next_tick_across_dst_changes(cron, tz, start):
    s = sched(cron, tz)
    ticks = forward(s, start, 12)
    for before, tick in itertools.pairwise(ticks):
        assert s.prev_tick(tick) == before
        assert s.prev_tick(tick + 0.5) == tick
        assert s.prev_tick(s.next_tick(tick) - 0.5) == tick


def test_dedup_ttl_is_well_beyond_the_period():
    assert sched("* * * * * *").dedup_ttl(1000, grace=30) == MIN_DEDUP_TTL
    assert sched("@daily").dedup_ttl(utc(2026, 1, 1), grace=30) == 3 * 86400
    assert sched("* * * * * *").dedup_ttl(1000, grace=1000) == 10_000


def test_cron_tick():
    assert cron_tick("nightly", 1_700_000_000) == "cron:nightly:1700000000"


# -- missed-tick policy -----------------------------------------------------------------------

MINUTE = sched("* * * * *")
MINUTE_ONCE = sched("* * * * *", missed="run_once")
T = utc(2026, 5, 1, 10)


def test_nothing_due_before_the_next_tick():
    plan = plan_ticks(MINUTE, T + 0.5, T + 59.9, grace=30)
    assert plan.on_time == () and plan.catch_up is None
    assert plan.cursor == T + 59.9


def test_a_due_tick_is_enqueued_once_and_the_cursor_moves_past_it():
    plan = plan_ticks(MINUTE, T + 0.5, T + 60.003, grace=30)
    assert plan.on_time == (T + 60,) and plan.catch_up is None
    assert plan_ticks(MINUTE, plan.cursor, T + 60.2, grace=30).on_time == ()


def test_ticks_late_by_at_most_the_grace_are_on_time():
    every = sched("* * * * * *")
    plan = plan_ticks(every, 100, 103.5, grace=30)
    assert plan.on_time == (101, 102, 103)
    assert plan_ticks(MINUTE, T, T + 60 + 30, grace=30).on_time == (T + 60,)  # exactly grace
    assert plan_ticks(MINUTE, T, T + 60 + 30.001, grace=30).on_time == ()


def test_after_downtime_skip_drops_the_missed_ticks():
    plan = plan_ticks(MINUTE, T, T + 3600 + 10, grace=30)
    assert plan.on_time == (T + 3600,)
    assert plan.catch_up is None
    assert plan_ticks(MINUTE, T, T + 3600 + 45, grace=30).on_time == ()


def test_after_downtime_run_once_enqueues_the_most_recent_missed_tick():
    plan = plan_ticks(MINUTE_ONCE, T, T + 3600 + 10, grace=30)
    assert plan.catch_up == T + 3540
    assert plan.on_time == (T + 3600,)
    late = plan_ticks(MINUTE_ONCE, T, T + 3600 + 45, grace=30)
    assert late.catch_up == T + 3600 and late.on_time == ()


def test_run_once_without_missed_ticks_catches_nothing_up():
    assert plan_ticks(MINUTE_ONCE, T, T + 60.2, grace=30).catch_up is None
    assert plan_ticks(MINUTE_ONCE, T + 60, T + 119, grace=30).catch_up is None
    # the previous tick is missed but was already decided (at or before the cursor)
    assert plan_ticks(MINUTE_ONCE, T + 60, T + 60 + 45, grace=30).catch_up is None


def test_daily_schedule_after_a_week_down_runs_once_at_most():
    daily = sched("0 3 * * *", "Europe/Berlin", missed="run_once")
    last = utc(2026, 5, 1, 1)  # 03:00 CEST
    plan = plan_ticks(daily, last, utc(2026, 5, 8, 12), grace=30)
    assert plan.catch_up == utc(2026, 5, 8, 1) and plan.on_time == ()
    assert (
        plan_ticks(
            sched("0 3 * * *", "Europe/Berlin"), last, utc(2026, 5, 8, 12), grace=30
        ).catch_up
        is None
    )


@settings(max_examples=300, deadline=None)
@given(
    cursor=st.floats(0, 600),
    span=st.floats(0, 600),
    grace=st.floats(0.01, 120),
    once=st.booleans(),
)
def test_plan_partitions_the_due_ticks(cursor, span, grace, once):
    s = sched("* * * * * */7", missed="run_once" if once else "skip")
    now = cursor + span
    due = [t for t in range(int(cursor) + 1, int(now) + 1) if t % 60 % 7 == 0 and cursor < t <= now]
    plan = plan_ticks(s, cursor, now, grace)
    assert list(plan.on_time) == [t for t in due if now - t <= grace]
    missed = [t for t in due if now - t > grace]
    assert plan.catch_up == (missed[-1] if once and missed else None)
    assert plan.cursor == max(cursor, now)


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("61 * * * *", "schedule 'nightly': cron '61 * * * *' is not valid"),
        ("* * * *", "schedule 'nightly': cron '* * * *' is not valid: use five fields"),
        ("* * * * * * *", "is not valid: use five fields"),
        ("@reboot", "schedule 'nightly': cron '@reboot' is not valid"),
        ("*/0 * * * *", "is not valid"),
        ("a b c d e", "is not valid"),
        ("0 0 30 2 *", "schedule 'nightly': cron '0 0 30 2 *' never fires"),
    ],
)
def test_invalid_expressions_are_named_with_their_schedule(cron, message):
    with pytest.raises(ConfigError) as exc:
        sched(cron, name="nightly")
    assert message in str(exc.value)
    assert str(exc.value).startswith(f"schedule 'nightly': cron {cron!r} ")


@pytest.mark.parametrize("tz", ["Mars/Base", "utc", "", "../etc/passwd", "America"])
def test_unknown_time_zones_are_rejected(tz):
    with pytest.raises(ConfigError, match=f"schedule 'nightly': unknown time zone {tz!r}"):
        sched("0 * * * *", tz, name="nightly")


def test_disabled_schedules_are_validated_but_not_run():
    ok = CronSchedule(name="a", cron="* * * * *", job="j")
    off = CronSchedule(name="b", cron="* * * * *", job="j", enabled=False)
    assert [s.name for s in compile_schedules([ok, off])] == ["a"]
    broken = CronSchedule(name="c", cron="99 * * * *", job="j", enabled=False)
    with pytest.raises(ConfigError, match="schedule 'c'"):
        compile_schedules([ok, broken])


def test_a_name_used_twice_is_rejected():
    a = CronSchedule(name="a", cron="* * * * *", job="j")
    with pytest.raises(ConfigError, match="schedule 'a' is defined twice"):
        compile_schedules([a, a.model_copy(update={"cron": "0 * * * *"})])


def test_whitespace_is_normalized():
    assert sched("  0   9 * *   1-5 ").expr == "0 9 * * 1-5"


def test_scheduler_construction_validates_and_contacts_nothing():
    from jobfleet import Client
    from jobfleet.cron import Scheduler

    client = Client("redis://127.0.0.1:1/0", queue="q")  # nothing listens: no I/O happens
    ok = CronSchedule(name="a", cron="@hourly", job="j", payload={"x": 1})
    off = CronSchedule(name="b", cron="* * * * *", job="j", enabled=False)
    assert [s.name for s in Scheduler(client, "q", [ok, off]).schedules] == ["a"]
    for grace in (0, -1, float("nan"), 1e9):
        with pytest.raises(ConfigError, match="cron grace"):
            Scheduler(client, "q", [ok], grace=grace)
    with pytest.raises(ConfigError, match=r"schedule 'p': payload of job 'j' is .* over the limit"):
        Scheduler(
            client, "q", [CronSchedule(name="p", cron="@daily", job="j", payload="x" * 2_000_000)]
        )
    bad_priority = CronSchedule.model_construct(**{**ok.model_dump(), "priority": "urgent"})
    with pytest.raises(ConfigError, match="schedule 'a'"):
        Scheduler(client, "q", [bad_priority])
