"""Cron schedules: one job per tick across the fleet, on Redis time, with a missed-tick policy."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis.asyncio as aioredis
from croniter import CroniterBadDateError, croniter
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from .backoff import Retries
from .client import Client
from .cluster import node_of
from .connection import REDIS_DOWN
from .engine import EncodedJob
from .errors import ConfigError, JobfleetError
from .keys import QUEUES, cron_field, cron_tick, logical_queue
from .settings import CronSchedule, redact_text
from .waits import wait_event

log = logging.getLogger("jobfleet.cron")

DEFAULT_GRACE = 30.0  # a tick enqueued up to this late is on time; older ones are missed
MIN_DEDUP_TTL = 3600.0  # seconds a tick's dedup key lives, at least ...
DEDUP_PERIODS = 3  # ... and at least this many schedule periods (and 10 x grace)
MAX_GRACE = 3600.0  # bounds the ticks one look at the clock may have to enqueue
MAX_SLEEP = 60.0  # re-read Redis time (and the other workers' progress) at least this often
WAKE_MARGIN = 0.002  # wake this long after a tick so that Redis time has reached it
MAX_STEPS = 10_000  # bound on tick iteration: covers a per-second schedule over MAX_GRACE
MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
FIELDS_HINT = (
    "use five fields (minute hour day-of-month month day-of-week), a sixth for seconds, "
    "or one of " + ", ".join(sorted(MACROS))
)
_REFERENCE = 946_684_800.0  # 2000-01-01 UTC: where validation looks for a first tick


@dataclass(frozen=True)
class CompiledSchedule:
    """A validated schedule with its tick arithmetic (pure: no I/O, no clock).

    Ticks are whole Unix seconds. A tick falls on the wall clock of the schedule's time zone;
    as in Vixie cron, a wall-clock time skipped by a DST spring-forward fires at the change, and
    when a fall-back repeats an hour, schedules that pin their hours (`30 2 * * *`, `@daily`)
    fire only in the first pass while those with `*` hours (`0 * * * *`) fire in both.
    """

    spec: CronSchedule
    expr: str
    tz: ZoneInfo
    fixed_hours: bool

    @property
    def name(self) -> str:
        return self.spec.name

    def _repeated(self, tick: int) -> bool:
        """A second pass over a wall-clock time that a fixed-hour schedule already fired at."""
        return self.fixed_hours and datetime.fromtimestamp(tick, self.tz).fold == 1

    def ticks_after(self, after: float) -> Iterator[int]:
        """The ticks strictly after `after` (Unix seconds), in order, without end."""
        # Ticks are whole seconds: start from one, so that microsecond rounding cannot skip one.
        it = croniter(self.expr, datetime.fromtimestamp(math.floor(after), self.tz))
        while True:
            tick = round(it.get_next(datetime).timestamp())
            if tick > after and not self._repeated(tick):
                yield tick

    def next_tick(self, after: float) -> int:
        """The first tick strictly after `after` (Unix seconds)."""
        return next(self.ticks_after(after))

    def prev_tick(self, before: float) -> int | None:
        """The last tick strictly before `before`, or None if there is none."""
        it = croniter(self.expr, datetime.fromtimestamp(math.ceil(before), self.tz))
        try:
            for _ in range(MAX_STEPS):
                tick = round(it.get_prev(datetime).timestamp())
                if tick < before and not self._repeated(tick):
                    break
            else:
                return None
        except CroniterBadDateError:
            return None
        # croniter's backward search is not always the mirror of its forward one around DST
        # changes; the forward one defines the ticks, so step forward to the last one.
        for nxt in itertools.islice(self.ticks_after(tick), MAX_STEPS):
            if nxt >= before:
                break
            tick = nxt
        return tick

    def period(self, tick: int) -> int:
        """Seconds from `tick` to the one after it."""
        return self.next_tick(tick) - tick

    def dedup_ttl(self, tick: int, grace: float) -> float:
        """How long the tick's dedup key lives: far longer than anyone may still enqueue it."""
        return max(MIN_DEDUP_TTL, DEDUP_PERIODS * self.period(tick), 10 * grace)


def compile_schedule(spec: CronSchedule) -> CompiledSchedule:
    """Validate a schedule's expression and time zone; ConfigError says what is wrong."""
    expr = " ".join(spec.cron.split())
    where = f"schedule {spec.name!r}"
    if expr.startswith("@"):
        expr = expr.lower()
        if expr not in MACROS:
            raise ConfigError(f"{where}: cron {spec.cron!r} is not valid: {FIELDS_HINT}")
    elif len(expr.split(" ")) not in (5, 6):
        raise ConfigError(f"{where}: cron {spec.cron!r} is not valid: {FIELDS_HINT}")
    try:
        tz = ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(
            f"{where}: unknown time zone {spec.timezone!r} (use an IANA name such as "
            "'UTC' or 'Europe/Berlin')"
        ) from None
    try:
        itr = croniter(expr, datetime.fromtimestamp(_REFERENCE, tz))
        itr.get_next(float)
    except CroniterBadDateError:
        raise ConfigError(f"{where}: cron {spec.cron!r} never fires") from None
    except (ValueError, KeyError, TypeError) as exc:  # croniter's errors are ValueErrors
        raise ConfigError(f"{where}: cron {spec.cron!r} is not valid: {exc}") from None
    hours = itr.expanded[1]
    return CompiledSchedule(spec=spec, expr=expr, tz=tz, fixed_hours=hours != ["*"])


def compile_schedules(specs: Sequence[CronSchedule]) -> list[CompiledSchedule]:
    """Validate every schedule (disabled ones too); return the enabled ones."""
    seen: set[str] = set()
    out = []
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(f"schedule {spec.name!r} is defined twice")
        seen.add(spec.name)
        compiled = compile_schedule(spec)
        if spec.enabled:
            out.append(compiled)
    return out


@dataclass(frozen=True, slots=True)
class Plan:
    """What one scheduler enqueues for a schedule when it looks at the clock."""

    on_time: tuple[int, ...]  # due ticks at most `grace` late, oldest first
    catch_up: int | None  # run_once: the most recent missed tick
    cursor: float  # every tick at or before this is decided


def plan_ticks(sched: CompiledSchedule, cursor: float, now: float, grace: float) -> Plan:
    """Decide the ticks in (cursor, now]: on time when at most `grace` seconds late, else missed.

    Missed ticks (after downtime) are dropped under `skip`; under `run_once` the most recent
    of them is enqueued once.
    """
    if now <= cursor:
        return Plan((), None, cursor)
    # Every tick at or before `start` is missed; those after it are classified one by one.
    start = max(cursor, math.floor(now - grace) - 1)
    on_time: list[int] = []
    missed: int | None = None
    for tick in itertools.islice(sched.ticks_after(start), MAX_STEPS):
        if tick > now:
            break
        if now - tick <= grace:
            on_time.append(tick)
        else:
            missed = tick
    if missed is None and start > cursor:
        missed = sched.prev_tick(start + 1)  # the last tick at or before `start` (ticks are ints)
        if missed is not None and missed <= cursor:
            missed = None
    catch_up = missed if sched.spec.missed == "run_once" else None
    return Plan(tuple(on_time), catch_up, now)


@dataclass
class SchedulerCounters:
    """What a scheduler did, for logs, metrics and tests."""

    enqueued: int = 0  # jobs this scheduler wrote (catch-ups included)
    catch_ups: int = 0  # of which were missed ticks run once after downtime
    duplicates: int = 0  # ticks another scheduler (or an earlier run) had already enqueued
    errors: int = 0  # failed rounds (Redis down ...), each followed by a backoff


@dataclass
class _State:
    sched: CompiledSchedule
    template: EncodedJob
    cursor: float | None = None  # None until the first look at Redis


class Scheduler:
    """Enqueues the jobs of a queue's cron schedules; run one in every worker of the queue.

    However many run, each tick becomes exactly one job: its id and dedup key are derived from
    the tick (`cron:<schedule>:<unix seconds>`), so a second enqueue of the tick writes nothing,
    even after the first job was trimmed by retention. Time is Redis time. Each schedule's last
    enqueued tick lives in the queue's meta hash (`cron:<schedule>`): a schedule without one
    starts from now; after downtime `missed` decides about ticks more than `grace` seconds late.

    >>> scheduler = Scheduler(client, "reports", settings.queue.schedules)
    >>> await scheduler.run(stop)  # until `stop` is set; survives Redis outages
    """

    def __init__(
        self,
        client: Client,
        queue: str,
        schedules: Sequence[CronSchedule],
        *,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        if not 0 < grace <= MAX_GRACE:
            raise ConfigError(f"cron grace must be more than 0 and at most {MAX_GRACE:.0f} seconds")
        self.grace = grace
        self.counters = SchedulerCounters()
        self._engine = client.engine(queue)
        self._conn: aioredis.Redis = client.conn
        self._meta = self._engine.keys.meta
        self._states = [_State(s, self._template(client, s)) for s in compile_schedules(schedules)]
        self._registered = False
        self._offset: float | None = None  # Redis time minus local monotonic time
        # What the cron hash holds, once written (`_publish`).
        self._published: dict[FieldT, EncodableT] | None = None

    @staticmethod
    def _template(client: Client, sched: CompiledSchedule) -> EncodedJob:
        """The schedule's job, validated and encoded once; each tick fills in its id."""
        s = sched.spec
        key = cron_tick(s.name, 0)
        try:
            job = {"name": s.job, "payload": s.payload, "priority": s.priority}
            return client.encode({**job, "job_id": key, "dedup_key": key})
        except JobfleetError as exc:
            raise ConfigError(f"schedule {s.name!r}: {exc}") from None

    @property
    def schedules(self) -> list[CompiledSchedule]:
        """The enabled schedules this scheduler runs."""
        return [s.sched for s in self._states]

    @property
    def queue(self) -> str:
        return self._engine.queue

    def redis_now(self) -> float | None:
        """Redis time now, from the last measured offset (None before the first look)."""
        return None if self._offset is None else time.monotonic() + self._offset

    async def run(self, stop: asyncio.Event) -> None:
        """Enqueue ticks until `stop` is set. Never raises on Redis trouble: backs off 1 s
        to 30 s and carries on. Returns at once when there is no enabled schedule."""
        if not self._states:
            return
        names = ", ".join(s.sched.name for s in self._states)
        log.info(
            "cron: running %d schedule(s) on queue %s: %s", len(self._states), self.queue, names
        )
        retries = Retries()
        while not stop.is_set():
            try:
                sleep = await self.step()
            except Exception as exc:  # a scheduler must never take the worker down
                self.counters.errors += 1
                backoff = retries.next_delay()
                if isinstance(exc, (RedisError, *REDIS_DOWN)):
                    log.warning(
                        "cron: Redis unavailable (%s: %s); retrying in %.1f s",
                        type(exc).__name__,
                        redact_text(str(exc)),
                        backoff,
                    )
                else:
                    log.exception("cron: unexpected error; retrying in %.1f s", backoff)
                await wait_event(stop, backoff)
                continue
            retries.reset()
            await wait_event(stop, sleep)

    async def step(self) -> float:
        """Look at Redis time once, enqueue whatever is due; returns seconds until next due."""
        now = await self._sync()
        for state in self._states:
            assert state.cursor is not None
            plan = plan_ticks(state.sched, state.cursor, now, self.grace)
            ticks = [(t, False) for t in plan.on_time]
            if plan.catch_up is not None:
                ticks.insert(0, (plan.catch_up, True))
            for tick, catch_up in ticks:
                await self._enqueue(state, tick, catch_up=catch_up)
                state.cursor = max(state.cursor, tick)  # a retry after a failure won't redo it
            if ticks:
                await self._advance(state.sched.name, max(t for t, _ in ticks))
            state.cursor = plan.cursor
        nexts = [s.sched.next_tick(now if s.cursor is None else s.cursor) for s in self._states]
        await self._publish(nexts)
        due = min(nexts)
        current = self.redis_now() or now
        return min(MAX_SLEEP, max(0.0, due - current)) + WAKE_MARGIN

    async def _sync(self) -> float:
        """One round trip: Redis time (re-measuring the offset) and every schedule's last tick."""
        fields = [cron_field(s.sched.name) for s in self._states]
        before = time.monotonic()
        async with self._conn.pipeline(transaction=False) as pipe:
            # The clock of the node the queue's scripts run on (a cluster's pipeline refuses
            # time() and would ask any node).
            pipe.execute_command("TIME", **node_of(self._conn, self._meta))
            pipe.hmget(self._meta, fields)
            (secs, usecs), values = await pipe.execute()
        after = time.monotonic()
        now = int(secs) + int(usecs) / 1e6
        self._offset = now - (before + after) / 2
        for state, raw in zip(self._states, values, strict=True):
            last = _parse_tick(raw)
            if state.cursor is None:
                # No history: start from now, no backfill. History: the plan decides about
                # the ticks since (the missed-tick policy).
                state.cursor = now if last is None else float(last)
            elif last is not None and last > state.cursor:
                state.cursor = float(last)  # another worker got there first
        return now

    async def _publish(self, next_ticks: list[int]) -> None:
        """Write the schedules and their next ticks to the queue's cron hash, for
        `Client.cron_schedules` (readers that run no scheduler): the whole hash at the first
        step (schedules no longer configured go), then only what changed."""
        entries: dict[FieldT, EncodableT] = {}
        for state, tick in zip(self._states, next_ticks, strict=True):
            spec = state.sched.spec
            doc = {"cron": spec.cron, "timezone": spec.timezone, "job": spec.job}
            entries[spec.name] = json.dumps({**doc, "next_tick": tick}, separators=(",", ":"))
        key = self._engine.keys.cron
        if self._published is None:
            async with self._conn.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping=entries)
                await pipe.execute()
        else:
            changed = {k: v for k, v in entries.items() if self._published.get(k) != v}
            if not changed:
                return
            await self._conn.hset(key, mapping=changed)
        self._published = entries

    async def _enqueue(self, state: _State, tick: int, *, catch_up: bool) -> None:
        sched = state.sched
        key = cron_tick(sched.name, tick)
        job = dataclasses.replace(
            state.template,
            id=key,
            dedup_key=key,
            dedup_ttl_ms=int(sched.dedup_ttl(tick, self.grace) * 1000),
        )
        if not self._registered:
            await self._conn.sadd(QUEUES, logical_queue(self.queue))
            self._registered = True
        [(job_id, written)] = await self._engine.enqueue([job])
        at = datetime.fromtimestamp(tick, sched.tz).isoformat()
        if not written:
            self.counters.duplicates += 1
            log.debug("cron %s: tick %s already enqueued as %s", sched.name, at, job_id)
            return
        self.counters.enqueued += 1
        if catch_up:
            self.counters.catch_ups += 1
        log.info(
            "cron %s: enqueued %s job %s for tick %s%s",
            sched.name,
            sched.spec.job,
            job_id,
            at,
            " (missed during downtime, run once)" if catch_up else "",
        )

    async def _advance(self, name: str, tick: int) -> None:
        """Record `tick` as the schedule's last, only forward. Read-compare-write is racy, and
        harmless: a tick enqueued twice is written once (its id and dedup key)."""
        field = cron_field(name)
        last = _parse_tick(await self._conn.hget(self._meta, field))
        if last is None or last < tick:
            await self._conn.hset(self._meta, field, str(tick))


def _parse_tick(raw: object) -> int | None:
    if isinstance(raw, bytes):
        raw = raw.decode(errors="replace")
    if raw is None:
        return None
    try:
        return int(str(raw))
    except ValueError:
        return None
