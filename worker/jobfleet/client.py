"""The application's handle on jobfleet: enqueue jobs and inspect queues, jobs and dead letters."""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

import redis.asyncio as aioredis
from pydantic import ValidationError

from . import tracing
from .backoff import Backoff
from .bounds import MIB, GroupConcurrency, GroupWeight, PayloadBytes, Seconds, between, check
from .connection import connect
from .cursor import Cursor
from .engine import EncodedJob, Engine
from .errors import (
    ConfigError,
    JobActive,
    JobNotFound,
    JobStateError,
    PayloadError,
    QueueBusy,
    WaitTimeout,
)
from .job import JobInfo, JobSpec, JobState, Priority, PriorityLike, encode_json
from .keys import QUEUES, cron_field
from .settings import GroupRateLimit, check_group_name, check_queue_name, format_validation_error
from .stats import (
    LIST_STATES,
    CircuitState,
    CronInfo,
    GroupStats,
    JobPage,
    ListState,
    QueueStats,
    WorkerInfo,
)

DEFAULT_DEDUP_TTL = 3600.0
PageOffset = Annotated[int, between(0, 10**9)]
PageLimit = Annotated[int, between(1, 10_000)]
JobsLimit = Annotated[int, between(1, 1000)]  # Client.jobs: one page, one script call
CLEARABLE = ("waiting", "delayed", "held")  # what `clear` may empty (never active jobs)
QUEUES_CHUNK = 100  # queues whose stats one pipeline of `queues()` reads
T = TypeVar("T")


class DeadLetters:
    """Dead letters of one queue: list, show, replay, purge."""

    def __init__(self, client: Client, queue: str | None) -> None:
        self._client = client
        self._queue = queue

    async def count(self) -> int:
        eng = self._client.engine(self._queue)
        return int(await eng.conn.zcard(eng.keys.dead))

    async def list(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        name: str | None = None,
        error_type: str | None = None,
    ) -> builtins.list[JobInfo]:
        """Newest first, optionally only those of handler `name` or error class `error_type`."""
        offset = check("offset", PageOffset, offset)
        limit = check("limit", PageLimit, limit)
        ids = await self._matching(name, error_type)
        page = ids[offset : offset + limit]
        eng = self._client.engine(self._queue)
        out = []
        for job_id in page:
            h = await eng.job_hash(job_id)
            if h:
                out.append(JobInfo.from_hash(eng.queue, job_id, h))
        return out

    async def show(self, job_id: str) -> JobInfo:
        info = await self._client.get(job_id, queue=self._queue)
        if info.state is not JobState.DEAD:
            raise JobNotFound(f"job {job_id} is not a dead letter (it is {info.state.value})")
        return info

    async def replay(
        self,
        ids: Sequence[str] | None = None,
        *,
        name: str | None = None,
        error_type: str | None = None,
    ) -> int:
        """Put dead letters back in line with a fresh attempt budget; returns how many.

        With `ids`, exactly those; otherwise every dead letter matching the filters (all of
        them when no filter is given).
        """
        return await self._act("replay", ids, name, error_type)

    async def purge(
        self,
        ids: Sequence[str] | None = None,
        *,
        name: str | None = None,
        error_type: str | None = None,
    ) -> int:
        """Delete dead letters and their data for good; returns how many."""
        return await self._act("purge", ids, name, error_type)

    async def _act(
        self,
        action: str,
        ids: Sequence[str] | None,
        name: str | None,
        error_type: str | None,
    ) -> int:
        """Replay or purge `ids`, or every dead letter matching the filters."""
        targets = list(ids) if ids is not None else await self._matching(name, error_type)
        return await self._client.engine(self._queue).dead_letters(action, targets)

    async def _matching(self, name: str | None, error_type: str | None) -> builtins.list[str]:
        eng = self._client.engine(self._queue)
        ids: builtins.list[str] = [str(i) for i in await eng.conn.zrevrange(eng.keys.dead, 0, -1)]
        if name is None and error_type is None:
            return ids
        out = []
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            rows = await eng.job_hashes(chunk, ("name", "error_type"))
            for job_id, (job_name, job_error) in zip(chunk, rows, strict=True):
                if name is not None and job_name != name:
                    continue
                if error_type is not None and job_error != error_type:
                    continue
                out.append(job_id)
        return out


class Client:
    """Enqueue and inspect jobs. Create one per process and share it; it is coroutine-safe.

    >>> client = Client("redis://localhost:6379/0", queue="emails")
    >>> job_id = await client.enqueue("send-email", {"to": "ada@example.com"},
    ...                               priority="critical")
    >>> (await client.wait(job_id, timeout=30)).state
    <JobState.COMPLETED: 'completed'>
    """

    def __init__(
        self,
        redis_url: str = "redis://127.0.0.1:6379/0",
        *,
        queue: str = "default",
        max_payload_bytes: int = MIB,
        connection: aioredis.Redis | None = None,
    ) -> None:
        self.queue = check_queue_name(queue)
        self.max_payload_bytes: int = check("max_payload_bytes", PayloadBytes, max_payload_bytes)
        self.conn = connection if connection is not None else connect(redis_url)
        self._engines: dict[str, Engine] = {}
        self._registered: set[str] = set()

    def engine(self, queue: str | None = None) -> Engine:
        """The engine of `queue` (default: the client's queue)."""
        name = self.queue if queue is None else queue
        eng = self._engines.get(name)
        if eng is None:
            eng = self._engines[name] = Engine(self.conn, check_queue_name(name))
        return eng

    @property
    def round_trips(self) -> int:
        """Calls made to Redis by this client (a pipeline counts once)."""
        return sum(e.round_trips for e in self._engines.values())

    async def aclose(self) -> None:
        await self.conn.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- enqueue -------------------------------------------------------------------------

    async def enqueue(
        self,
        name: str,
        payload: Any = None,
        *,
        queue: str | None = None,
        priority: PriorityLike = Priority.NORMAL,
        delay: float | None = None,
        run_at: float | None = None,
        job_id: str | None = None,
        dedup_key: str | None = None,
        dedup_ttl: float | None = None,
        max_attempts: int | None = None,
        backoff: Backoff | None = None,
        timeout: float | None = None,
        rate_key: str | None = None,
        group: str | None = None,
    ) -> str:
        """Enqueue one job; returns its id.

        A job with an existing `job_id`, or a `dedup_key` seen within `dedup_ttl` seconds
        (default one hour), is not written again: the id of the first job is returned.
        `group` (a tenant, say) puts the job in that group's line: inside a priority level the
        groups are served round-robin (README "Groups"); None is the default group.
        """
        spec = _job_spec(
            name=name,
            payload=payload,
            priority=priority,
            delay=delay,
            run_at=run_at,
            job_id=job_id,
            dedup_key=dedup_key,
            dedup_ttl=dedup_ttl,
            max_attempts=max_attempts,
            backoff=backoff,
            timeout=timeout,
            rate_key=rate_key,
            group=group,
        )
        return (await self._enqueue([self.encode(spec)], queue))[0]

    async def enqueue_many(
        self, jobs: Iterable[JobSpec | dict[str, Any]], *, queue: str | None = None
    ) -> list[str]:
        """Enqueue many jobs in one pipeline; all are validated before anything is written."""
        encoded = [self.encode(job) for job in jobs]
        return await self._enqueue(encoded, queue)

    async def _enqueue(self, jobs: list[EncodedJob], queue: str | None) -> list[str]:
        eng = self.engine(queue)
        if eng.queue not in self._registered:
            await self.conn.sadd(QUEUES, eng.queue)
            self._registered.add(eng.queue)
        with tracing.publish(eng.queue, jobs):
            return [job_id for job_id, _ in await eng.enqueue(jobs)]

    def encode(self, job: JobSpec | Mapping[str, Any]) -> EncodedJob:
        """Validate and serialize one job exactly as `enqueue` would, without writing it.

        `job` is a JobSpec or the keyword arguments of `enqueue` as a mapping. Raises what
        `enqueue` raises on bad input (ConfigError, PayloadError, TypeError). The result is
        what `Engine.enqueue` writes; the cron scheduler encodes each schedule's job once
        this way and fills in each tick's id.
        """
        spec = job if isinstance(job, JobSpec) else _job_spec(**job)
        try:
            prio = Priority.parse(spec.priority)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        try:
            payload = encode_json(spec.payload)
        except (TypeError, ValueError) as exc:
            raise PayloadError(
                f"payload of job {spec.name!r} is not JSON-serializable: {exc}"
            ) from None
        size = len(payload)  # json.dumps escapes non-ASCII, so characters are bytes
        if size > self.max_payload_bytes:
            raise PayloadError(
                f"payload of job {spec.name!r} is {size} bytes, over the limit of "
                f"{self.max_payload_bytes} bytes"
            )
        if spec.delay is not None and spec.run_at is not None:
            raise ConfigError("give either delay or run_at, not both")
        if spec.dedup_ttl is not None and spec.dedup_key is None:
            raise ConfigError("dedup_ttl needs a dedup_key")
        if spec.group is not None:
            check_group_name(spec.group)
        # JobSpec bounds every number, so these conversions cannot overflow.
        run_at_ms = 0 if spec.run_at is None else int(spec.run_at * 1000)
        return EncodedJob(
            id=spec.job_id or os.urandom(16).hex(),
            chosen_id="1" if spec.job_id else "",
            name=spec.name,
            payload=payload,
            priority=int(prio),
            run_at_ms=run_at_ms,
            delay_ms=-1 if spec.delay is None else int(spec.delay * 1000),
            dedup_key=spec.dedup_key or "",
            dedup_ttl_ms=int((spec.dedup_ttl or DEFAULT_DEDUP_TTL) * 1000),
            max_attempts="" if spec.max_attempts is None else str(spec.max_attempts),
            backoff="" if spec.backoff is None else spec.backoff.model_dump_json(),
            timeout_ms="" if spec.timeout is None else str(int(spec.timeout * 1000)),
            rate_key=spec.rate_key or "",
            group=spec.group or "",
        )

    # -- inspect -------------------------------------------------------------------------

    async def get(self, job_id: str, *, queue: str | None = None) -> JobInfo:
        """The job's state, attempt, progress and result or error; JobNotFound if unknown."""
        eng = self.engine(queue)
        h, lease = await eng.job_and_lease(job_id)
        if not h:
            raise JobNotFound(f"no job {job_id!r} in queue {eng.queue!r}")
        deadline = None if lease is None else lease / 1000.0
        return JobInfo.from_hash(eng.queue, job_id, h, lease_deadline=deadline)

    async def wait(
        self, job_id: str, timeout: float | None = None, *, queue: str | None = None
    ) -> JobInfo:
        """Wait until the job is completed or dead-lettered; WaitTimeout after `timeout` s."""
        if timeout is not None:
            timeout = check("timeout", Seconds, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = 0.005
        while True:
            info = await self.get(job_id, queue=queue)
            if info.state.final:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"job {job_id} still {info.state.value} after {timeout} s")
            pause = interval if deadline is None else min(interval, deadline - time.monotonic())
            await asyncio.sleep(max(pause, 0))
            interval = min(interval * 2, 0.25)

    async def inspect(self, *, queue: str | None = None) -> QueueStats:
        """Counts, oldest wait and recent rates of a queue, read atomically."""
        eng = self.engine(queue)
        return _queue_stats(eng.queue, await eng.inspect())

    # -- managing jobs --------------------------------------------------------------------

    async def jobs(
        self,
        state: ListState,
        *,
        queue: str | None = None,
        name: str | None = None,
        error_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of the jobs in `state`, and the cursor of the next page (None: no more).

        Orders: ``waiting`` in claim order (priority levels in turn, FIFO inside one) for
        jobs without a group, then each job group's jobs in the same order, groups in byte
        order of their names (the round robin interleaves groups at claim time; a listing
        cannot follow it and stay stable while jobs move); ``held`` (waiting, but held back
        by a rate limit, an open circuit, or their group's limits or pause) the same;
        ``delayed`` by due time; ``active`` by id, each with its ``worker_id`` and
        ``lease_deadline``; ``completed``, ``dead`` and ``cancelled`` newest first.

        The cursor holds a position, not an offset, so paging stays right while jobs move:
        no job is listed twice in one walk, and every job that stays in the state for the
        whole walk is listed exactly once (jobs that arrive during the walk may or may not
        be). A page costs O(log N + limit) on a line of N jobs; ``active`` sorts the active
        set, which is as large as the fleet's slots.

        `name` (handler) and `error_type` (the last error's class) are applied in Redis, which
        looks at no more than 1000 entries (or `limit`, if larger) per call: with filters, a
        page may hold fewer than `limit` jobs, or none, and still have a `next_cursor` to go on.
        `limit` is 1 to 1000 (ConfigError otherwise, before anything is sent).
        """
        limit = check("limit", JobsLimit, limit)
        if state not in LIST_STATES:
            raise ConfigError(f"state: must be one of {', '.join(LIST_STATES)}, not {state!r}")
        for label, value in (("name", name), ("error_type", error_type)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{label}: must be a non-empty string or None")
        eng = self.engine(queue)
        at = (
            Cursor(eng.queue, state)
            if cursor is None
            else Cursor.decode(cursor, queue=eng.queue, state=state)
        )
        page = await eng.jobs(
            state,
            limit=limit,
            name=name or "",
            error_type=error_type or "",
            score=at.score,
            job_id=at.id,
            mark=at.mark,
        )
        jobs = []
        for job_id, score, h in page.rows:
            if not h:
                continue
            deadline = int(score) / 1000.0 if state == "active" and score else None
            jobs.append(JobInfo.from_hash(eng.queue, job_id, h, lease_deadline=deadline))
        nxt = Cursor(eng.queue, state, page.score, page.id, page.mark) if page.more else None
        return JobPage(jobs=jobs, next_cursor=None if nxt is None else nxt.encode())

    async def remove(self, job_id: str, *, queue: str | None = None) -> None:
        """Delete a job that is not running, from whichever line or set holds it, with its
        data and the dedup key standing for it. JobNotFound; JobActive for a running job
        (cancel it instead)."""
        eng = self.engine(queue)
        verdict = await eng.verb("remove", job_id)
        if verdict == "missing":
            raise JobNotFound(f"no job {job_id!r} in queue {eng.queue!r}")
        if verdict == "active":
            raise JobActive(
                f"job {job_id} is active (a worker is running it) and cannot be removed; "
                "cancel it (Client.cancel, `jobfleet job cancel`), then remove it",
                job_id=job_id,
            )

    async def retry(self, job_id: str, *, queue: str | None = None) -> None:
        """Put a dead job back in line (the back of its priority level) with its attempts
        reset. JobNotFound; JobStateError if it is not dead."""
        eng = self.engine(queue)
        verdict = await eng.verb("retry", job_id)
        if verdict == "missing":
            raise JobNotFound(f"no job {job_id!r} in queue {eng.queue!r}")
        if verdict != "ok":
            raise JobStateError(
                f"job {job_id} is {verdict}, not dead: only a dead job can be retried",
                job_id=job_id,
                state=verdict,
            )

    async def cancel(
        self, job_id: str, *, queue: str | None = None
    ) -> Literal["cancelled", "cancelling"]:
        """Cancel a job; it ends ``cancelled``, never retried nor dead-lettered.

        A waiting, held or delayed job leaves its line: "cancelled". An active job is
        cancelled in Redis at once (its lease token cleared, so the running attempt's
        outcome is refused: of a cancel and a completion exactly one wins) and its worker,
        told through its wake list or its next lease renewal, cancels the handler's task (a
        child process is killed; a thread cannot be stopped, so it runs to its end and its
        result is dropped): "cancelling". JobNotFound; JobStateError when the job is already
        completed, dead or cancelled.
        """
        eng = self.engine(queue)
        verdict = await eng.verb("cancel", job_id)
        if verdict == "missing":
            raise JobNotFound(f"no job {job_id!r} in queue {eng.queue!r}")
        if verdict == "cancelled":
            return "cancelled"
        if verdict == "cancelling":
            return "cancelling"
        state = verdict.removeprefix("final:")
        raise JobStateError(
            f"job {job_id} is already {state}: there is nothing to cancel",
            job_id=job_id,
            state=state,
        )

    async def clear(self, *, states: Sequence[str] = CLEARABLE, queue: str | None = None) -> int:
        """Remove every job waiting in `states` (any of waiting, delayed, held; never an
        active one) with its data, in bounded steps; returns how many."""
        if isinstance(states, str):
            states = [states]
        lines = list(dict.fromkeys(states))
        bad = [s for s in lines if s not in CLEARABLE]
        if bad or not lines:
            raise ConfigError(
                f"states: clear takes some of {', '.join(CLEARABLE)}, not {bad or 'none'} "
                "(active jobs can only be cancelled, one by one)"
            )
        return await self.engine(queue).clear(lines)

    async def obliterate(self, *, force: bool = False, queue: str | None = None) -> int:
        """Delete every key of the queue (jobs, dead letters, counters, settings such as the
        paused flag) and forget the queue; returns how many keys were removed.

        QueueBusy while jobs are active, unless `force` (their workers' outcomes are then
        refused as stale). Deleting runs in bounded steps, so a huge queue never blocks Redis
        for long; jobs enqueued meanwhile may survive it.
        """
        eng = self.engine(queue)
        active, removed = await eng.obliterate(force=force)
        if active and not force:
            raise QueueBusy(
                f"queue {eng.queue!r} has {active} active job{'s' if active != 1 else ''}: "
                "stop its workers or cancel those jobs first, or obliterate with force=True "
                "(`--force`)",
                queue=eng.queue,
                active=active,
            )
        await self.conn.srem(QUEUES, eng.queue)
        self._registered.discard(eng.queue)
        return removed

    async def cron_schedules(self, *, queue: str | None = None) -> list[CronInfo]:
        """The cron schedules a queue's workers run, as their schedulers last published them
        (next tick) and recorded (last tick enqueued), sorted by name."""
        eng = self.engine(queue)
        raw = await eng.conn.hgetall(eng.keys.cron)
        published = {str(k): json.loads(v) for k, v in raw.items()}
        names = sorted(published)
        lasts = await eng.conn.hmget(eng.keys.meta, [cron_field(n) for n in names]) if names else []
        out = []
        for name, last in zip(names, lasts, strict=True):
            p = published[name]
            out.append(
                CronInfo(
                    name=name,
                    cron=p["cron"],
                    timezone=p["timezone"],
                    job=p["job"],
                    next_tick=p.get("next_tick"),
                    last_tick=float(last) if last else None,
                )
            )
        return out

    async def workers(self, *, queue: str | None = None) -> dict[str, WorkerInfo]:
        """Live workers of a queue by id (``<hostname>:<pid>:<nonce>``; on Kubernetes the
        hostname is the pod's name): how many jobs each holds right now and whether it is
        drained. The operator uses it to choose and drain the pods it removes on a scale-in.

        (Before drains existed the values were the bare in-flight counts: that number is
        now `WorkerInfo.in_flight`.)"""
        return {
            w.id: WorkerInfo(id=w.id, in_flight=w.in_flight, draining=w.draining)
            for w in await self.engine(queue).workers()
        }

    async def drain_workers(
        self, worker_ids: Iterable[str], *, ttl: float = 300.0, queue: str | None = None
    ) -> int:
        """Drain workers: each finishes and renews the jobs it holds but claims nothing new
        (an idle one learns it at once), until `undrain_workers` or `ttl` seconds pass.
        Repeat the call to keep a drain beyond `ttl`: a drain whose owner went away lapses
        instead of idling a worker forever. Returns how many were not drained before."""
        ids = list(worker_ids)
        if not 0 < ttl <= 86_400:
            raise ConfigError(f"ttl must be in (0, 86400] seconds, got {ttl!r}")
        return await self.engine(queue).drain(ids, ttl_ms=int(ttl * 1000)) if ids else 0

    async def undrain_workers(self, worker_ids: Iterable[str], *, queue: str | None = None) -> int:
        """End the drain of these workers: they claim again at once. Returns how many were
        drained."""
        ids = list(worker_ids)
        return await self.engine(queue).undrain(ids) if ids else 0

    async def queue_names(self) -> list[str]:
        """Names of the queues this Redis has seen jobs for, sorted."""
        return sorted(str(q) for q in await self.conn.smembers(QUEUES))

    async def queues(self) -> list[QueueStats]:
        """The stats of every queue this Redis has seen jobs for, sorted by name: one
        pipelined round trip per 100 queues (each queue's stats are still one atomic read)."""
        names = await self.queue_names()
        out = []
        for i in range(0, len(names), QUEUES_CHUNK):
            chunk = [self.engine(n) for n in names[i : i + QUEUES_CHUNK]]
            raws = await Engine.inspect_many(self.conn, chunk)
            out += [_queue_stats(e.queue, raw) for e, raw in zip(chunk, raws, strict=True)]
        return out

    def dead_letters(self, queue: str | None = None) -> DeadLetters:
        return DeadLetters(self, queue)

    @property
    def dlq(self) -> DeadLetters:
        """Dead letters of the client's queue."""
        return DeadLetters(self, None)

    async def pause(self, *, queue: str | None = None) -> None:
        """Workers stop claiming (in-flight jobs finish); enqueue keeps accepting."""
        await self.engine(queue).set_paused(True)

    async def resume(self, *, queue: str | None = None) -> None:
        """Workers claim again; idle ones are woken when jobs are waiting."""
        await self.engine(queue).set_paused(False)

    # -- groups ---------------------------------------------------------------------------

    async def set_group_limits(
        self,
        group: str,
        *,
        concurrency: int | None = None,
        rate_limit: GroupRateLimit | None = None,
        weight: int | None = None,
        queue: str | None = None,
    ) -> None:
        """Override the queue's group limits for one group, at run time (kept in Redis).

        `concurrency`: jobs of the group in flight at once, fleet-wide; `rate_limit`: starts
        per period for the group; `weight`: its share in the round robin (default 1: a group
        of weight 3 gets three jobs per turn of a group of weight 1). None puts a setting
        back to the queue's (`QueueSettings.group_concurrency`, `group_rate_limit`).
        """
        check_group_name(group)
        c = "" if concurrency is None else str(check("concurrency", GroupConcurrency, concurrency))
        w = "" if weight is None else str(check("weight", GroupWeight, weight))
        if rate_limit is not None and not isinstance(rate_limit, GroupRateLimit):
            raise TypeError(f"rate_limit must be a GroupRateLimit, not {type(rate_limit).__name__}")
        r = "" if rate_limit is None else str(rate_limit.max)
        rp = "" if rate_limit is None else str(int(rate_limit.period * 1000))
        await self.engine(queue).group("limits", group, c, r, rp, w)

    async def pause_group(self, group: str, *, queue: str | None = None) -> None:
        """Workers start no job of `group` (its jobs count as held); other groups go on."""
        await self.engine(queue).group("pause", check_group_name(group))

    async def resume_group(self, group: str, *, queue: str | None = None) -> None:
        """Undo `pause_group`; idle workers are woken when the group has work."""
        await self.engine(queue).group("resume", check_group_name(group))

    async def group_stats(self, group: str, *, queue: str | None = None) -> GroupStats:
        """One group's waiting and active jobs, why it is held, and its overrides."""
        eng = self.engine(queue)
        reply = await eng.group("stats", check_group_name(group))
        raw = {str(reply[i]): str(reply[i + 1]) for i in range(0, len(reply), 2)}
        rate = None
        if raw["rate_max"]:
            period = int(raw["rate_period_ms"]) / 1000
            rate = GroupRateLimit(max=int(raw["rate_max"]), period=period)
        return GroupStats.model_validate(
            {
                "queue": eng.queue,
                "group": group,
                "waiting": int(raw["waiting"]),
                "active": int(raw["active"]),
                "held": raw["held"] or None,  # 'paused' | 'concurrency' | 'rate'
                "paused": raw["paused"] == "1",
                "concurrency": int(raw["concurrency"]) if raw["concurrency"] else None,
                "rate_limit": rate,
                "weight": int(raw["weight"]) if raw["weight"] else 1,
            }
        )


# Per priority: its name in QueueStats, and the inspect script's fields for it.
_PRIORITY_FIELDS = tuple(
    (p.name.lower(), f"waiting:{p.value}", f"oldest_ms:{p.value}") for p in Priority
)


def _queue_stats(queue: str, raw: dict[str, str]) -> QueueStats:
    """A queue's stats from the inspect script's reply."""
    now = int(raw["time_ms"])
    window = int(raw["window_ms"]) / 1000.0
    by_prio = {}
    oldest_by_prio = {}
    for name, waiting_field, oldest_field in _PRIORITY_FIELDS:
        count = by_prio[name] = int(raw[waiting_field])
        if count:
            oldest_by_prio[name] = int(raw[oldest_field]) / 1000.0
    get = raw.get
    return QueueStats(
        queue=queue,
        time=now / 1000.0,
        waiting=int(raw["waiting"]),
        waiting_by_priority=by_prio,
        delayed=int(raw["delayed"]),
        active=int(raw["active"]),
        dead=int(raw["dead"]),
        completed=int(raw["completed"]),
        cancelled=int(get("cancelled", 0)),
        oldest_wait=max(oldest_by_prio.values(), default=0.0),
        oldest_wait_by_priority=oldest_by_prio,
        completed_total=int(get("completed_total", 0)),
        failed_total=int(get("failed_total", 0)),
        dead_total=int(get("dead_total", 0)),
        recovered_total=int(get("recovered_total", 0)),
        cancelled_total=int(get("cancelled_total", 0)),
        removed_total=int(get("removed_total", 0)),
        throughput=int(raw["window_completed"]) / window if window else 0.0,
        failure_rate=int(raw["window_failed"]) / window if window else 0.0,
        window=window,
        workers=int(raw["workers"]),
        paused=raw["paused"] == "1",
        held=int(get("held", 0)),
        circuits=_circuits(raw),
        groups=int(raw.get("groups", 0)),
        groups_held=int(raw.get("groups_held", 0)),
        top_groups={k[6:]: int(v) for k, v in raw.items() if k.startswith("group:")},
    )


def _circuits(raw: dict[str, str]) -> dict[str, CircuitState]:
    fields: dict[str, dict[str, str]] = {}
    for key, value in raw.items():
        if key.startswith("cb:"):
            scope, _, attr = key[3:].rpartition(":")
            fields.setdefault(scope, {})[attr] = value
    out = {}
    for scope, f in fields.items():
        state = {"half": "half_open"}.get(f.get("state", "closed"), f.get("state", "closed"))
        until = int(f.get("until") or 0)
        out[scope] = CircuitState(
            state=state,  # type: ignore[arg-type]
            until=until / 1000.0 if state != "closed" and until else None,
            trips=int(f.get("trips", 0)),
        )
    return out


class SyncClient:
    """The same API for code that is not async (Django views, scripts, cron jobs).

    It runs a private event loop; inside a running event loop use `Client` instead.
    """

    def __init__(self, redis_url: str = "redis://127.0.0.1:6379/0", **kwargs: Any) -> None:
        self._runner = asyncio.Runner()
        self._client = self._runner.run(_make_client(redis_url, kwargs))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    @property
    def client(self) -> Client:
        """The async client underneath, for its engine and counters."""
        return self._client

    def enqueue(self, name: str, payload: Any = None, **options: Any) -> str:
        """See `Client.enqueue`."""
        return self._run(self._client.enqueue(name, payload, **options))

    def enqueue_many(
        self, jobs: Iterable[JobSpec | dict[str, Any]], *, queue: str | None = None
    ) -> list[str]:
        return self._run(self._client.enqueue_many(jobs, queue=queue))

    def get(self, job_id: str, *, queue: str | None = None) -> JobInfo:
        return self._run(self._client.get(job_id, queue=queue))

    def wait(
        self, job_id: str, timeout: float | None = None, *, queue: str | None = None
    ) -> JobInfo:
        return self._run(self._client.wait(job_id, timeout, queue=queue))

    def inspect(self, *, queue: str | None = None) -> QueueStats:
        return self._run(self._client.inspect(queue=queue))

    def queues(self) -> list[QueueStats]:
        return self._run(self._client.queues())

    def queue_names(self) -> list[str]:
        return self._run(self._client.queue_names())

    def jobs(self, state: ListState, **options: Any) -> JobPage:
        """See `Client.jobs`."""
        return self._run(self._client.jobs(state, **options))

    def remove(self, job_id: str, *, queue: str | None = None) -> None:
        self._run(self._client.remove(job_id, queue=queue))

    def retry(self, job_id: str, *, queue: str | None = None) -> None:
        self._run(self._client.retry(job_id, queue=queue))

    def cancel(
        self, job_id: str, *, queue: str | None = None
    ) -> Literal["cancelled", "cancelling"]:
        return self._run(self._client.cancel(job_id, queue=queue))

    def clear(self, *, states: Sequence[str] = CLEARABLE, queue: str | None = None) -> int:
        return self._run(self._client.clear(states=states, queue=queue))

    def obliterate(self, *, force: bool = False, queue: str | None = None) -> int:
        return self._run(self._client.obliterate(force=force, queue=queue))

    def cron_schedules(self, *, queue: str | None = None) -> list[CronInfo]:
        return self._run(self._client.cron_schedules(queue=queue))

    def workers(self, *, queue: str | None = None) -> dict[str, WorkerInfo]:
        return self._run(self._client.workers(queue=queue))

    def set_group_limits(self, group: str, **limits: Any) -> None:
        """See `Client.set_group_limits`."""
        self._run(self._client.set_group_limits(group, **limits))

    def pause_group(self, group: str, *, queue: str | None = None) -> None:
        self._run(self._client.pause_group(group, queue=queue))

    def resume_group(self, group: str, *, queue: str | None = None) -> None:
        self._run(self._client.resume_group(group, queue=queue))

    def group_stats(self, group: str, *, queue: str | None = None) -> GroupStats:
        return self._run(self._client.group_stats(group, queue=queue))

    def pause(self, *, queue: str | None = None) -> None:
        self._run(self._client.pause(queue=queue))

    def resume(self, *, queue: str | None = None) -> None:
        self._run(self._client.resume(queue=queue))

    def dead_letters(self, queue: str | None = None) -> SyncDeadLetters:
        return SyncDeadLetters(self, self._client.dead_letters(queue))

    @property
    def dlq(self) -> SyncDeadLetters:
        return self.dead_letters()

    def close(self) -> None:
        self._run(self._client.aclose())
        self._runner.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncDeadLetters:
    """`DeadLetters` for `SyncClient`."""

    def __init__(self, owner: SyncClient, inner: DeadLetters) -> None:
        self._owner = owner
        self._inner = inner

    def count(self) -> int:
        return self._owner._run(self._inner.count())

    def list(self, **filters: Any) -> list[JobInfo]:
        return self._owner._run(self._inner.list(**filters))

    def show(self, job_id: str) -> JobInfo:
        return self._owner._run(self._inner.show(job_id))

    def replay(self, ids: Sequence[str] | None = None, **filters: Any) -> int:
        return self._owner._run(self._inner.replay(ids, **filters))

    def purge(self, ids: Sequence[str] | None = None, **filters: Any) -> int:
        return self._owner._run(self._inner.purge(ids, **filters))


def _job_spec(**fields: Any) -> JobSpec:
    """A JobSpec from `enqueue`'s keyword arguments; ConfigError names a bad one."""
    try:
        return JobSpec(**fields)
    except ValidationError as exc:
        message = format_validation_error(exc).replace("settings", "job")
    raise ConfigError(message)  # outside the handler: no ValidationError as __context__


async def _make_client(url: str, kwargs: dict[str, Any]) -> Client:
    # Built inside the runner's loop so its connection pool belongs to that loop.
    return Client(url, **kwargs)
