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
from .engine import TOP_GROUPS, EncodedJob, Engine
from .errors import (
    ConfigError,
    JobActive,
    JobNotFound,
    JobStateError,
    PayloadError,
    QueueBusy,
    WaitTimeout,
)
from .job import (
    NAME_MAX,
    JobInfo,
    JobSpec,
    JobState,
    Priority,
    PriorityLike,
    encode_json,
    has_control,
)
from .keys import (
    PARTITION_MARK,
    QUEUES,
    check_engine_name,
    cron_field,
    partition_name,
    partition_names,
    partitions_key,
)
from .partitions import merge_stats, place, spread
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
# How long a Client trusts what it read of a queue's descriptor (its number of partitions):
# a producer that wrote before any worker recorded K learns it within this time (its jobs
# meanwhile land in the plain queue, which the partitioned workers drain too).
PARTITIONS_TTL = 10.0
CRON_PARTITION = 0  # the partition a partitioned queue's cron ticks go to (one per tick)
T = TypeVar("T")
# The fields of a JobSpec that leave a job plain: every option at its default (Client.encode).
_PLAIN_FIELDS = frozenset({"name", "payload", "priority"})


class DeadLetters:
    """Dead letters of one queue (of every partition of a partitioned one): list, show,
    replay, purge."""

    def __init__(self, client: Client, queue: str | None) -> None:
        self._client = client
        self._queue = queue

    async def count(self) -> int:
        engs = await self._client.partition_engines(self._queue)
        counts = await asyncio.gather(*(e.conn.zcard(e.keys.dead) for e in engs))
        return sum(int(c) for c in counts)

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
        found = await self._matching(name, error_type)
        logical = self._client.queue_name(self._queue)
        out = []
        for eng, job_id in found[offset : offset + limit]:
            h = await eng.job_hash(job_id)
            if h:
                out.append(JobInfo.from_hash(logical, job_id, h))
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
        engs = await self._client.partition_engines(self._queue)
        if ids is not None:
            # Each partition's script acts on the ids that are its own dead letters and
            # ignores the rest: no lookup of which partition holds which id is needed.
            targets = builtins.list(ids)
            done = await asyncio.gather(*(e.dead_letters(action, targets) for e in engs))
            return sum(done)
        by_engine: dict[int, builtins.list[str]] = {}
        for eng, job_id in await self._matching(name, error_type):
            by_engine.setdefault(id(eng), []).append(job_id)
        done = await asyncio.gather(
            *(e.dead_letters(action, by_engine[id(e)]) for e in engs if id(e) in by_engine)
        )
        return sum(done)

    async def _matching(
        self, name: str | None, error_type: str | None
    ) -> builtins.list[tuple[Engine, str]]:
        """(partition, id) of the matching dead letters, newest first across partitions."""
        engs = await self._client.partition_engines(self._queue)
        found: builtins.list[tuple[Engine, str]]
        if len(engs) == 1:
            eng = engs[0]
            found = [(eng, str(i)) for i in await eng.conn.zrevrange(eng.keys.dead, 0, -1)]
        else:
            lines = await asyncio.gather(
                *(e.conn.zrevrange(e.keys.dead, 0, -1, withscores=True) for e in engs)
            )
            scored: builtins.list[tuple[float, Engine, str]] = []
            for e, line in zip(engs, lines, strict=True):
                scored += [(float(row[1]), e, str(row[0])) for row in line]
            scored.sort(key=lambda row: -row[0])  # stable: ties keep partition order
            found = [(e, i) for _, e, i in scored]
        if name is None and error_type is None:
            return found
        out = []
        for i in range(0, len(found), 1000):
            chunk = found[i : i + 1000]
            for eng in {id(e): e for e, _ in chunk}.values():
                mine = [j for e, j in chunk if e is eng]
                rows = await eng.job_hashes(mine, ("name", "error_type"))
                keep = set()
                for job_id, (job_name, job_error) in zip(mine, rows, strict=True):
                    if name is not None and job_name != name:
                        continue
                    if error_type is not None and job_error != error_type:
                        continue
                    keep.add(job_id)
                out += [(e, j) for e, j in chunk if e is eng and j in keep]
        if len(engs) > 1:
            order = {(id(e), j): n for n, (e, j) in enumerate(found)}
            out.sort(key=lambda row: order[(id(row[0]), row[1])])
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
        # Per logical queue: its number of partitions and when to read the descriptor again.
        self._partitions: dict[str, tuple[int, float]] = {}
        self._round_robin: dict[str, int] = {}

    def engine(self, queue: str | None = None) -> Engine:
        """The engine of `queue` (default: the client's queue), or of one partition of a
        partitioned queue (`<queue>#<index>`)."""
        name = self.queue if queue is None else queue
        eng = self._engines.get(name)
        if eng is None:
            eng = self._engines[name] = Engine(self.conn, check_engine_name(name))
        return eng

    def queue_name(self, queue: str | None = None) -> str:
        """The logical queue a call is about (default: the client's queue)."""
        return self.queue if queue is None else check_queue_name(queue)

    async def partitions(self, *, queue: str | None = None) -> int:
        """How many partitions the queue has, as its descriptor in Redis says (1 when there is
        none); read once per queue and trusted for `PARTITIONS_TTL` seconds."""
        name = self.queue_name(queue)
        hit = self._partitions.get(name)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        raw = await self.conn.get(partitions_key(name))
        count = 1 if raw is None else int(raw)
        self._partitions[name] = (count, time.monotonic() + PARTITIONS_TTL)
        return count

    async def partition_engines(self, queue: str | None = None) -> list[Engine]:
        """The engines of every partition of the queue, in order, and last the plain queue
        (where a producer writes before any worker recorded the partitions); the queue's own
        engine alone when it is not partitioned."""
        name = self.queue_name(queue)
        count = await self.partitions(queue=name)
        if count == 1:
            return [self.engine(name)]
        return [self.engine(n) for n in partition_names(name, count)] + [self.engine(name)]

    async def cron_engine(self, queue: str | None = None) -> Engine:
        """Where the queue's cron ticks and schedules live: a fixed partition of a
        partitioned queue (so a tick's id dedups it), the queue itself otherwise."""
        name = self.queue_name(queue)
        count = await self.partitions(queue=name)
        return self.engine(name if count == 1 else partition_name(name, CRON_PARTITION))

    async def _owner(self, job_id: str, queue: str | None) -> Engine | None:
        """The partition holding job `job_id`: one pipelined EXISTS per partition (an id does
        not say where its job is: ids may be chosen by the caller)."""
        engs = await self.partition_engines(queue)
        if len(engs) == 1:
            return engs[0]
        async with self.conn.pipeline(transaction=False) as pipe:
            for eng in engs:
                pipe.exists(eng.keys.job(job_id))
            found = await pipe.execute()
        return next((e for e, n in zip(engs, found, strict=True) if n), None)

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
        partition_key: str | None = None,
    ) -> str:
        """Enqueue one job; returns its id.

        A job with an existing `job_id`, or a `dedup_key` seen within `dedup_ttl` seconds
        (default one hour), is not written again: the id of the first job is returned.
        `group` (a tenant, say) puts the job in that group's line: inside a priority level the
        groups are served round-robin (README "Groups"); None is the default group.
        `partition_key` places the job in a partitioned queue: jobs with the same key go to the
        same partition and keep their relative order (docs/partitions.md "Placement").
        """
        if (
            delay is None
            and run_at is None
            and job_id is None
            and dedup_key is None
            and dedup_ttl is None
            and max_attempts is None
            and backoff is None
            and timeout is None
            and rate_key is None
            and group is None
            and partition_key is None
        ):
            job = self._plain(name, payload, priority)
            if job is not None:
                return (await self._enqueue([job], queue))[0]
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
            # Only when given: validating an explicit None costs every enqueue without a key.
            **({} if partition_key is None else {"partition_key": partition_key}),
        )
        return (await self._enqueue([self.encode(spec)], queue))[0]

    def _plain(self, name: object, payload: Any, priority: object) -> EncodedJob | None:
        """The job of an enqueue that gives only a name, a payload and a priority (most do),
        checked as JobSpec and `encode` check it but without building a JobSpec: pydantic
        and its Python validators cost more than the rest of the client's share of a call
        (bench/RESULTS.md, "One-job enqueue, second pass"). None where the name or the
        priority is not plainly valid: the full path then raises its specific error."""
        if type(name) is not str or not 0 < len(name) <= NAME_MAX or has_control(name):
            return None
        if type(priority) is Priority:
            prio = priority
        elif type(priority) is int or type(priority) is str:
            try:
                prio = Priority.parse(priority)
            except ValueError:
                return None
        else:
            return None
        return self._plain_job(name, payload, prio)

    def _plain_job(self, name: str, payload: Any, prio: Priority) -> EncodedJob:
        """A job with every option at its default: a fresh id, due now."""
        return EncodedJob(
            id=os.urandom(16).hex(),
            name=name,
            payload=self._payload(name, payload),
            priority=int(prio),
        )

    def _payload(self, name: str, payload: Any) -> str:
        """The payload as JSON, within `max_payload_bytes`; PayloadError otherwise."""
        try:
            text = encode_json(payload)
        except (TypeError, ValueError) as exc:
            raise PayloadError(f"payload of job {name!r} is not JSON-serializable: {exc}") from None
        size = len(text)  # json.dumps escapes non-ASCII, so characters are bytes
        if size > self.max_payload_bytes:
            raise PayloadError(
                f"payload of job {name!r} is {size} bytes, over the limit of "
                f"{self.max_payload_bytes} bytes"
            )
        return text

    async def enqueue_many(
        self, jobs: Iterable[JobSpec | dict[str, Any]], *, queue: str | None = None
    ) -> list[str]:
        """Enqueue many jobs in one pipeline; all are validated before anything is written."""
        encoded = [self.encode(job) for job in jobs]
        return await self._enqueue(encoded, queue)

    async def _enqueue(self, jobs: list[EncodedJob], queue: str | None) -> list[str]:
        name = self.queue if queue is None else queue
        hit = self._partitions.get(name)
        if hit is not None and hit[1] > time.monotonic():
            count = hit[0]
        else:
            count = await self.partitions(queue=name)
        if name not in self._registered:
            await self.conn.sadd(QUEUES, name)
            self._registered.add(name)
        if count == 1:
            eng = self.engine(name)
            with tracing.publish(eng.queue, jobs):
                return [job_id for job_id, _ in await eng.enqueue(jobs)]
        by_partition = spread(self._place(name, job, count) for job in jobs)
        with tracing.publish(name, jobs):
            replies = await asyncio.gather(
                *(
                    self.engine(partition_name(name, index)).enqueue([jobs[p] for p in spots])
                    for index, spots in by_partition.items()
                )
            )
        out = [""] * len(jobs)
        for spots, reply in zip(by_partition.values(), replies, strict=True):
            for spot, (job_id, _) in zip(spots, reply, strict=True):
                out[spot] = job_id
        return out

    def _place(self, queue: str, job: EncodedJob, count: int) -> int:
        """The partition of `job` (docs/partitions.md "Placement"): by the first of its
        partition key, rate key, group, dedup key or chosen id, so that jobs sharing one share
        a partition (order, a per-key rate window, group limits, dedup stay exact); else round
        robin per client."""
        key = (
            job.partition_key
            or job.rate_key
            or job.group
            or job.dedup_key
            or (job.id if job.chosen_id else "")
        )
        if key:
            return place(key, count)
        turn = self._round_robin.get(queue, 0)
        self._round_robin[queue] = turn + 1
        return turn % count

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
        if spec.model_fields_set <= _PLAIN_FIELDS:  # no option given (the admin API's most)
            return self._plain_job(spec.name, spec.payload, prio)
        payload = self._payload(spec.name, spec.payload)
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
            partition_key=spec.partition_key or "",
        )

    # -- inspect -------------------------------------------------------------------------

    async def get(self, job_id: str, *, queue: str | None = None) -> JobInfo:
        """The job's state, attempt, progress and result or error; JobNotFound if unknown.

        In a partitioned queue the lookup asks every partition in one pipeline."""
        engs = await self.partition_engines(queue)
        if len(engs) == 1:
            h, lease = await engs[0].job_and_lease(job_id)
        else:
            async with self.conn.pipeline(transaction=False) as pipe:
                for eng in engs:
                    pipe.hgetall(eng.keys.job(job_id))
                    pipe.zscore(eng.keys.active, job_id)
                replies = await pipe.execute()
            h, lease = next(
                ((replies[i], replies[i + 1]) for i in range(0, len(replies), 2) if replies[i]),
                ({}, None),
            )
        name = self.queue_name(queue)
        if not h:
            raise JobNotFound(f"no job {job_id!r} in queue {name!r}")
        deadline = None if lease is None else lease / 1000.0
        return JobInfo.from_hash(name, job_id, h, lease_deadline=deadline)

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
        """Counts, oldest wait and recent rates of a queue, read atomically (a partitioned
        queue's: every partition's read in one pipeline, then summed, `partitions.merge_stats`)."""
        engs = await self.partition_engines(queue)
        if len(engs) == 1:
            return _queue_stats(engs[0].queue, await engs[0].inspect())
        raws = await Engine.inspect_many(self.conn, engs)
        return _queue_stats(self.queue_name(queue), merge_stats(raws, TOP_GROUPS))

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
        engs = await self.partition_engines(queue)
        index, inner = 0, cursor
        if len(engs) > 1 and cursor is not None:
            index, inner = _partition_cursor(cursor, len(engs))
        eng = engs[index]
        logical = self.queue_name(queue)
        at = (
            Cursor(eng.queue, state)
            if inner is None
            else Cursor.decode(inner, queue=eng.queue, state=state)
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
            jobs.append(JobInfo.from_hash(logical, job_id, h, lease_deadline=deadline))
        nxt = Cursor(eng.queue, state, page.score, page.id, page.mark) if page.more else None
        if len(engs) == 1:
            return JobPage(jobs=jobs, next_cursor=None if nxt is None else nxt.encode())
        # A partitioned queue is walked partition by partition (docs/partitions.md).
        if nxt is not None:
            following: str | None = f"p{index}.{nxt.encode()}"
        else:
            following = f"p{index + 1}." if index + 1 < len(engs) else None
        return JobPage(jobs=jobs, next_cursor=following)

    async def remove(self, job_id: str, *, queue: str | None = None) -> None:
        """Delete a job that is not running, from whichever line or set holds it, with its
        data and the dedup key standing for it. JobNotFound; JobActive for a running job
        (cancel it instead)."""
        verdict = await self._verb("remove", job_id, queue)
        if verdict == "active":
            raise JobActive(
                f"job {job_id} is active (a worker is running it) and cannot be removed; "
                "cancel it (Client.cancel, `jobfleet job cancel`), then remove it",
                job_id=job_id,
            )

    async def retry(self, job_id: str, *, queue: str | None = None) -> None:
        """Put a dead job back in line (the back of its priority level) with its attempts
        reset. JobNotFound; JobStateError if it is not dead."""
        verdict = await self._verb("retry", job_id, queue)
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
        verdict = await self._verb("cancel", job_id, queue)
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

    async def _verb(self, name: str, job_id: str, queue: str | None) -> str:
        """Run a one-job script on the partition holding the job; JobNotFound if none does."""
        eng = await self._owner(job_id, queue)
        verdict = "missing" if eng is None else await eng.verb(name, job_id)
        if verdict == "missing":
            raise JobNotFound(f"no job {job_id!r} in queue {self.queue_name(queue)!r}")
        return verdict

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
        engs = await self.partition_engines(queue)
        return sum(await asyncio.gather(*(e.clear(lines) for e in engs)))

    async def obliterate(self, *, force: bool = False, queue: str | None = None) -> int:
        """Delete every key of the queue (jobs, dead letters, counters, settings such as the
        paused flag) and forget the queue; returns how many keys were removed.

        QueueBusy while jobs are active, unless `force` (their workers' outcomes are then
        refused as stale). Deleting runs in bounded steps, so a huge queue never blocks Redis
        for long; jobs enqueued meanwhile may survive it.
        """
        name = self.queue_name(queue)
        engs = await self.partition_engines(name)
        if len(engs) == 1:
            active, removed = await engs[0].obliterate(force=force)
        else:
            # Every partition is checked before any is touched: all of them go, or none.
            actives = [await e.conn.zcard(e.keys.active) for e in engs] if not force else []
            active, removed = sum(int(a) for a in actives), 0
            if not active:
                for eng in engs:  # the plain queue last: its keys hold the descriptor
                    removed += (await eng.obliterate(force=True))[1]
                self._partitions.pop(name, None)
        if active and not force:
            raise QueueBusy(
                f"queue {name!r} has {active} active job{'s' if active != 1 else ''}: "
                "stop its workers or cancel those jobs first, or obliterate with force=True "
                "(`--force`)",
                queue=name,
                active=active,
            )
        await self.conn.srem(QUEUES, name)
        self._registered.discard(name)
        return removed

    async def cron_schedules(self, *, queue: str | None = None) -> list[CronInfo]:
        """The cron schedules a queue's workers run, as their schedulers last published them
        (next tick) and recorded (last tick enqueued), sorted by name."""
        eng = await self.cron_engine(queue)
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
        now `WorkerInfo.in_flight`.)

        Of a partitioned queue: every worker any partition has registered, its jobs summed
        over the partitions, drained when any partition says so."""
        engs = await self.partition_engines(queue)
        out: dict[str, WorkerInfo] = {}
        for loads in await asyncio.gather(*(e.workers() for e in engs)):
            for w in loads:
                seen = out.get(w.id)
                in_flight = w.in_flight + (seen.in_flight if seen else 0)
                draining = w.draining or (seen.draining if seen else False)
                out[w.id] = WorkerInfo(id=w.id, in_flight=in_flight, draining=draining)
        return out

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
        if not ids:
            return 0
        engs = await self.partition_engines(queue)
        drained = await asyncio.gather(*(e.drain(ids, ttl_ms=int(ttl * 1000)) for e in engs))
        return max(drained)  # a partitioned queue's partitions each record the drain

    async def undrain_workers(self, worker_ids: Iterable[str], *, queue: str | None = None) -> int:
        """End the drain of these workers: they claim again at once. Returns how many were
        drained."""
        ids = list(worker_ids)
        if not ids:
            return 0
        engs = await self.partition_engines(queue)
        return max(await asyncio.gather(*(e.undrain(ids) for e in engs)))

    async def queue_names(self) -> list[str]:
        """Names of the queues this Redis has seen jobs for, sorted (a partitioned queue once,
        by its logical name)."""
        names = {str(q) for q in await self.conn.smembers(QUEUES)}
        return sorted(n for n in names if PARTITION_MARK not in n)

    async def queues(self) -> list[QueueStats]:
        """The stats of every queue this Redis has seen jobs for, sorted by name: one
        pipelined round trip per 100 queues (each queue's stats are still one atomic read)."""
        names = await self.queue_names()
        out = []
        for i in range(0, len(names), QUEUES_CHUNK):
            part = names[i : i + QUEUES_CHUNK]
            engs = [await self.partition_engines(n) for n in part]
            raws = await Engine.inspect_many(self.conn, [e for line in engs for e in line])
            at = 0
            for name, line in zip(part, engs, strict=True):
                merged = merge_stats(raws[at : at + len(line)], TOP_GROUPS)
                out.append(_queue_stats(name, merged))
                at += len(line)
        return out

    def dead_letters(self, queue: str | None = None) -> DeadLetters:
        return DeadLetters(self, queue)

    @property
    def dlq(self) -> DeadLetters:
        """Dead letters of the client's queue."""
        return DeadLetters(self, None)

    async def pause(self, *, queue: str | None = None) -> None:
        """Workers stop claiming (in-flight jobs finish); enqueue keeps accepting."""
        await asyncio.gather(*(e.set_paused(True) for e in await self._fresh_engines(queue)))

    async def resume(self, *, queue: str | None = None) -> None:
        """Workers claim again; idle ones are woken when jobs are waiting."""
        await asyncio.gather(*(e.set_paused(False) for e in await self._fresh_engines(queue)))

    async def _fresh_engines(self, queue: str | None) -> list[Engine]:
        """`partition_engines` from the descriptor as Redis has it now, not as cached: a pause
        must reach the partitions a worker recorded a moment ago (the worker that records
        them carries an earlier pause of the plain queue over)."""
        self._partitions.pop(self.queue_name(queue), None)
        return await self.partition_engines(queue)

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
        await self._each_partition(queue, "limits", group, c, r, rp, w)

    async def pause_group(self, group: str, *, queue: str | None = None) -> None:
        """Workers start no job of `group` (its jobs count as held); other groups go on."""
        await self._each_partition(queue, "pause", check_group_name(group))

    async def resume_group(self, group: str, *, queue: str | None = None) -> None:
        """Undo `pause_group`; idle workers are woken when the group has work."""
        await self._each_partition(queue, "resume", check_group_name(group))

    async def _each_partition(self, queue: str | None, action: str, *args: Any) -> None:
        """A group action on every partition (a group's limits hold in each)."""
        engs = await self.partition_engines(queue)
        await asyncio.gather(*(e.group(action, *args) for e in engs))

    async def group_stats(self, group: str, *, queue: str | None = None) -> GroupStats:
        """One group's waiting and active jobs (summed over partitions), why it is held, and
        its overrides."""
        check_group_name(group)
        engs = await self.partition_engines(queue)
        replies = await asyncio.gather(*(e.group("stats", group) for e in engs))
        raws = [{str(r[i]): str(r[i + 1]) for i in range(0, len(r), 2)} for r in replies]
        raw = next((r for r in raws if r["held"]), raws[0])
        for key in ("waiting", "active"):
            raw[key] = str(sum(int(r[key]) for r in raws))
        rate = None
        if raw["rate_max"]:
            period = int(raw["rate_period_ms"]) / 1000
            rate = GroupRateLimit(max=int(raw["rate_max"]), period=period)
        return GroupStats.model_validate(
            {
                "queue": self.queue_name(queue),
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


def _queue_stats(queue: str, raw: Mapping[str, str | int]) -> QueueStats:
    """A queue's stats from the inspect script's reply (values as text or integers)."""
    now = int(raw["time_ms"])
    window = int(raw["window_ms"]) / 1000.0
    by_prio = {}
    oldest_by_prio = {}
    for name, waiting_field, oldest_field in _PRIORITY_FIELDS:
        count = by_prio[name] = int(raw[waiting_field])
        if count:
            oldest_by_prio[name] = int(raw[oldest_field]) / 1000.0
    get = raw.get
    # Only a queue with groups has group fields, and only one with breakers has `cb:` ones:
    # most replies need no second look at their fields.
    grouped = "groups" in raw
    breakers = [k for k in raw if k.startswith("cb:")]
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
        paused=str(raw["paused"]) == "1",
        held=int(get("held", 0)),
        circuits=_circuits(raw, breakers) if breakers else {},
        groups=int(get("groups", 0)),
        groups_held=int(get("groups_held", 0)),
        top_groups=(
            {k[6:]: int(v) for k, v in raw.items() if k.startswith("group:")} if grouped else {}
        ),
    )


def _circuits(raw: Mapping[str, str | int], keys: list[str]) -> dict[str, CircuitState]:
    fields: dict[str, dict[str, str]] = {}
    for key in keys:
        scope, _, attr = key[3:].rpartition(":")
        fields.setdefault(scope, {})[attr] = str(raw[key])
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

    def partitions(self, *, queue: str | None = None) -> int:
        return self._run(self._client.partitions(queue=queue))

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


def _partition_cursor(cursor: str, count: int) -> tuple[int, str | None]:
    """A partitioned queue's cursor: ``p<index>.<that partition's cursor>`` (empty: its
    start); ConfigError when it is none."""
    head, dot, inner = cursor.partition(".") if isinstance(cursor, str) else ("", "", "")
    digits = head[1:]
    if not dot or not head.startswith("p") or not digits.isdigit() or int(digits) >= count:
        raise ConfigError("cursor: not a cursor of this listing (pass next_cursor as given)")
    return int(digits), inner or None


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
