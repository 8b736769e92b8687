"""The application's handle on jobfleet: enqueue jobs and inspect queues, jobs and dead letters."""

from __future__ import annotations

import asyncio
import builtins
import os
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

import redis.asyncio as aioredis
from pydantic import ValidationError

from .backoff import Backoff
from .bounds import MIB, PayloadBytes, Seconds, between, check
from .connection import connect
from .engine import EncodedJob, Engine
from .errors import ConfigError, JobNotFound, PayloadError, WaitTimeout
from .job import JobInfo, JobSpec, JobState, Priority, PriorityLike, encode_json
from .keys import QUEUES
from .settings import check_queue_name, format_validation_error
from .stats import CircuitState, QueueStats, WorkerInfo

DEFAULT_DEDUP_TTL = 3600.0
PageOffset = Annotated[int, between(0, 10**9)]
PageLimit = Annotated[int, between(1, 10_000)]
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
    ) -> str:
        """Enqueue one job; returns its id.

        A job with an existing `job_id`, or a `dedup_key` seen within `dedup_ttl` seconds
        (default one hour), is not written again: the id of the first job is returned.
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
        )

    # -- inspect -------------------------------------------------------------------------

    async def get(self, job_id: str, *, queue: str | None = None) -> JobInfo:
        """The job's state, attempt, progress and result or error; JobNotFound if unknown."""
        eng = self.engine(queue)
        h = await eng.job_hash(job_id)
        if not h:
            raise JobNotFound(f"no job {job_id!r} in queue {eng.queue!r}")
        return JobInfo.from_hash(eng.queue, job_id, h)

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
        raw = await eng.inspect()
        now = int(raw["time_ms"])
        window = int(raw["window_ms"]) / 1000.0
        by_prio = {p.name.lower(): int(raw[f"waiting:{p.value}"]) for p in Priority}
        oldest_by_prio = {
            p.name.lower(): int(raw[f"oldest_ms:{p.value}"]) / 1000.0
            for p in Priority
            if int(raw[f"waiting:{p.value}"])
        }
        return QueueStats(
            queue=eng.queue,
            time=now / 1000.0,
            waiting=int(raw["waiting"]),
            waiting_by_priority=by_prio,
            delayed=int(raw["delayed"]),
            active=int(raw["active"]),
            dead=int(raw["dead"]),
            completed=int(raw["completed"]),
            oldest_wait=max(oldest_by_prio.values(), default=0.0),
            oldest_wait_by_priority=oldest_by_prio,
            completed_total=int(raw.get("completed_total", 0)),
            failed_total=int(raw.get("failed_total", 0)),
            dead_total=int(raw.get("dead_total", 0)),
            recovered_total=int(raw.get("recovered_total", 0)),
            throughput=int(raw["window_completed"]) / window if window else 0.0,
            failure_rate=int(raw["window_failed"]) / window if window else 0.0,
            window=window,
            workers=int(raw["workers"]),
            paused=raw["paused"] == "1",
            held=int(raw.get("held", 0)),
            circuits=_circuits(raw),
        )

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

    async def queues(self) -> list[str]:
        """Names of the queues this Redis has seen jobs for."""
        return sorted(str(q) for q in await self.conn.smembers(QUEUES))

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

    def queues(self) -> list[str]:
        return self._run(self._client.queues())

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
