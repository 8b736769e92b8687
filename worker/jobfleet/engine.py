"""The Redis engine: one queue's keys and the atomic scripts that move its jobs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from . import scripts
from .job import Priority
from .keys import QueueKeys, check_engine_name
from .settings import CircuitBreaker, GroupRateLimit, RateLimit
from .wire import ScriptHead, Wire

ENQUEUE_CHUNK = 500  # jobs per script call: bounded Lua stack, one pipeline for all chunks
TP_WINDOW_BUCKETS = 12  # x 5 s buckets = the rate window inspect reports
CLAIMED_FIELDS = 8  # per job in the claim script's reply: id ... backoff, trace
CANCEL_BELL = "cancel"  # what cancel.lua pushes to the own wake list of a cancelled job's worker
LIST_SCAN = 1000  # entries the jobs script looks at per call at most (filters, walk marks)
CLEAR_CHUNK = 1000  # jobs removed per call of the clear script
OBLITERATE_CHUNK = 500  # keys per UNLINK (and SCAN COUNT) while obliterating a queue


TOP_GROUPS = 10  # groups by backlog that inspect reports (and the metrics export, the rest 'other')


def flow_json(
    rate_limit: RateLimit | None,
    breaker: CircuitBreaker | None,
    group_concurrency: int | None = None,
    group_rate_limit: GroupRateLimit | None = None,
    partitions: int = 1,
) -> str:
    """The claim script's flow-control settings; empty when the queue has none (fast path).

    In a partitioned queue (`partitions` > 1) each partition's shared rate window, which
    cannot span partitions, allows max // partitions (docs/partitions.md "Rate limits")."""
    flow: dict[str, Any] = {}
    groups: dict[str, Any] = {}
    if group_concurrency is not None:
        groups["c"] = group_concurrency
    if group_rate_limit is not None:
        groups["r"] = group_rate_limit.max
        groups["rp"] = int(group_rate_limit.period * 1000)
    if groups:
        flow["g"] = groups
    if rate_limit is not None:
        rl: dict[str, Any] = {"max": rate_limit.max, "period": int(rate_limit.period * 1000)}
        if rate_limit.key_field:
            rl["field"] = rate_limit.key_field
        if partitions > 1:
            rl["share"] = rate_limit.max // partitions
        flow["rl"] = rl
    if breaker is not None:
        cb: dict[str, Any] = {
            "scope": breaker.scope,
            "threshold": breaker.failure_threshold,
            "window": int(breaker.window * 1000),
            "reset": int(breaker.reset_timeout * 1000),
            "probes": breaker.half_open_probes,
        }
        if breaker.failure_ratio is not None:
            cb["ratio"] = breaker.failure_ratio
        flow["cb"] = cb
    # Lua's cjson turns JSON null into a truthy value: absent keys only, never nulls.
    return json.dumps(flow, separators=(",", ":")) if flow else ""


@dataclass(slots=True)  # not frozen: frozen __init__ costs a microsecond per job
class EncodedJob:
    """A job validated and serialized for the enqueue script."""

    id: str
    name: str
    payload: str
    priority: int
    chosen_id: str = ""  # "1" when the caller chose the id (it may already exist)
    run_at_ms: int = 0
    delay_ms: int = -1
    dedup_key: str = ""
    dedup_ttl_ms: int = 0
    max_attempts: str = ""
    backoff: str = ""
    timeout_ms: str = ""
    rate_key: str = ""
    trace: str = ""  # the W3C traceparent of the enqueue's span (jobfleet[otel]), or ""
    group: str = ""  # "" = the default group
    # Where a partitioned queue places the job (jobfleet.partitions); never sent to Redis.
    partition_key: str = ""

    def options(self) -> str:
        """Every field but id, name, priority and payload as one record of the enqueue
        script (lua/enqueue.lua), or "" when all are at their defaults (most jobs): the
        script then decodes nothing."""
        if not (
            self.chosen_id
            or self.run_at_ms
            or self.delay_ms != -1
            or self.dedup_key
            or self.max_attempts
            or self.backoff
            or self.timeout_ms
            or self.rate_key
            or self.trace
            or self.group
        ):
            return ""
        return (
            f"{self.chosen_id}\x1f{self.run_at_ms}\x1f{self.delay_ms}\x1f{self.dedup_key}\x1f"
            f"{self.dedup_ttl_ms}\x1f{self.max_attempts}\x1f{self.backoff}\x1f"
            f"{self.timeout_ms}\x1f{self.rate_key}\x1f{self.trace}\x1f{self.group}"
        )


@dataclass(slots=True)  # not frozen, as EncodedJob: built for every job a worker claims
class ClaimedJob:
    """A job a worker now holds under `token` until its lease runs out."""

    id: str
    name: str
    payload: str
    attempt: int
    max_attempts: int | None
    timeout_ms: int | None
    backoff: str | None
    token: str
    trace: str | None = None  # the enqueuer's traceparent, when it traced the enqueue


@dataclass(frozen=True, slots=True)
class Failure:
    """The outcome of a failed attempt, as the claim script takes it."""

    id: str
    token: str
    error_type: str
    message: str
    traceback: str
    delay_ms: int  # retry delay; ignored when the job is dead-lettered
    permanent_reason: str = ""  # non-empty dead-letters at once with this reason


@dataclass(frozen=True, slots=True)
class ClaimPolicy:
    """The queue settings the claim script applies (scripts keep no configuration)."""

    lease_ms: int
    worker_ttl_ms: int
    max_attempts: int
    poison_after: int
    keep_done: int = -1
    done_age_ms: int = -1
    keep_dead: int = -1
    dead_age_ms: int = -1
    flow: str = ""  # rate limit and circuit breaker, as JSON for the script ("" = none)
    # The claim script's one policy argument, built once: the fields above in order, split
    # by \x1f like a batch record (flow is JSON, which escapes control characters).
    packed: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = (
            self.lease_ms,
            self.worker_ttl_ms,
            self.max_attempts,
            self.poison_after,
            self.keep_done,
            self.done_age_ms,
            self.keep_dead,
            self.dead_age_ms,
            self.flow,
        )
        object.__setattr__(self, "packed", "\x1f".join(map(str, fields)))


@dataclass(slots=True)
class ClaimResult:
    jobs: list[ClaimedJob]
    stale_acks: int
    next_delayed_ms: int | None
    next_lease_expiry_ms: int | None
    paused: bool
    next_hold_release_ms: int | None = None
    recovered: int = 0  # expired leases of other (dead) workers put back in line by this call
    draining: bool = False  # this worker is drained: the claim took nothing, by request
    woken_by: str | None = None  # what ended the wait before it (claim_when_woken): the bell


@dataclass(frozen=True, slots=True)
class Page:
    """One reply of the jobs script: the jobs (id, score, hash) and where the walk stands."""

    rows: list[tuple[str, str, dict[str, str]]]
    more: bool
    score: str
    id: str
    mark: str


@dataclass(frozen=True, slots=True)
class Renewal:
    """The reply of `extend`: leases lost to a recovery, and jobs cancelled while running."""

    lost: list[str]
    cancelled: list[str]


@dataclass(frozen=True, slots=True)
class WorkerLoad:
    """One live worker as the `workers` script sees it."""

    id: str
    in_flight: int
    draining: bool


async def evalsha_pipeline(
    conn: aioredis.Redis | RedisCluster,
    script: AsyncScript,
    calls: Sequence[tuple[Sequence[Any], Sequence[Any]]],
) -> list[Any]:
    """Call `script` once per (keys, args) in one pipeline (on a cluster: one per node
    involved, each call on the node owning its keys), by its hash directly: redis-py's
    pipelined scripts would first ask Redis whether each is loaded, a round trip more, and
    its cluster pipeline refuses them. A Redis that does not know the script (restarted,
    flushed, a replica just promoted) gets it loaded, and the pipeline is sent again."""
    for _ in range(2):
        async with conn.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            replies = await pipe.execute(raise_on_error=False)
        if not any(isinstance(r, NoScriptError) for r in replies):
            break
        await conn.script_load(script.script)  # on a cluster: on every primary
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return list(replies)


@dataclass
class Engine:
    """One queue on one Redis connection; every method is one round trip."""

    conn: aioredis.Redis
    queue: str
    round_trips: int = 0
    keys: QueueKeys = field(init=False)  # every key of the queue (jobfleet.keys)
    prefix: str = field(init=False)
    _scripts: dict[str, AsyncScript] = field(init=False, repr=False)
    _inspect_packed: tuple[list[bytes], list[Any]] | None = field(
        default=None, init=False, repr=False
    )
    # Every script call sends the queue's keys and prefix: encoded once here, since redis-py
    # would otherwise encode each of them on every call (the larger part of packing a call).
    _wire_keys: list[bytes] = field(init=False, repr=False)
    _wire_prefix: bytes = field(init=False, repr=False)
    # On a plain client, calls go out pre-packed (jobfleet.wire); None: through redis-py.
    _wire: Wire | None = field(init=False, repr=False)
    _heads: dict[str, ScriptHead] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        check_engine_name(self.queue)
        self.keys = QueueKeys(self.queue)
        self.prefix = self.keys.prefix
        self._wire_keys = [k.encode() for k in self.keys.script]
        self._wire_prefix = self.prefix.encode()
        self._scripts = {n: self.conn.register_script(scripts.source(n)) for n in scripts.NAMES}
        self._wire = Wire.of(self.conn) if Wire.usable(self.conn) else None

    def _head(self, name: str) -> ScriptHead:
        """The script's call packed up to its own arguments (the queue's keys and prefix)."""
        head = self._heads.get(name)
        if head is None:
            head = self._heads[name] = ScriptHead(
                self._scripts[name], self._wire_keys, [self._wire_prefix]
            )
        return head

    async def _run(self, name: str, *args: Any) -> Any:
        self.round_trips += 1
        if self._wire is not None:
            return await self._wire.call(self._head(name), args)
        return await self._scripts[name](keys=self._wire_keys, args=[self._wire_prefix, *args])

    async def enqueue(self, jobs: Sequence[EncodedJob]) -> list[tuple[str, bool]]:
        """Write jobs (skipping duplicates); returns (id, written) per job, in order."""
        if len(jobs) == 1:  # most calls: no chunks to cut, no replies to place
            job = jobs[0]
            name = "enqueue_grouped" if job.group else "enqueue"
            reply = await self._run(name, *self._enqueue_args(jobs))
            return [(reply[1], False)] if reply else [(job.id, True)]
        chunks = [jobs[i : i + ENQUEUE_CHUNK] for i in range(0, len(jobs), ENQUEUE_CHUNK)]
        if not chunks:
            return []
        # A batch with a grouped job needs the script that carries the group helpers; the
        # others run without them (about 10% fewer Redis instructions, bench/RESULTS.md).
        name = "enqueue_grouped" if any(job.group for job in jobs) else "enqueue"
        if len(chunks) == 1:
            replies = [await self._run(name, *self._enqueue_args(chunks[0]))]
        elif self._wire is not None:
            self.round_trips += 1
            head = self._head(name)
            replies = await self._wire.pipeline([(head, self._enqueue_args(c)) for c in chunks])
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        else:  # a cluster: one pipeline per node (the chunks all go to the queue's)
            self.round_trips += 1
            calls = [(self._wire_keys, [self._wire_prefix, *self._enqueue_args(c)]) for c in chunks]
            replies = await evalsha_pipeline(self.conn, self._scripts[name], calls)
        out = [(job.id, True) for job in jobs]
        for c, reply in enumerate(replies):
            for i in range(0, len(reply), 2):
                out[c * ENQUEUE_CHUNK + int(reply[i]) - 1] = (reply[i + 1], False)
        return out

    @staticmethod
    def _enqueue_args(chunk: Sequence[EncodedJob]) -> list[Any]:
        """The enqueue script's arguments after the prefix: five per job."""
        args: list[Any] = [len(chunk)]
        for job in chunk:
            args += (job.id, job.name, job.priority, job.payload, job.options())
        return args

    async def claim(
        self,
        *,
        token: str,
        n: int,
        worker_id: str,
        policy: ClaimPolicy,
        completions: Iterable[tuple[str, str, str]] = (),
        failures: Iterable[Failure] = (),
    ) -> ClaimResult:
        """Settle finished jobs and claim up to `n` new ones, in one atomic call."""
        args = self._claim_args(token, n, worker_id, policy, completions, failures)
        return self._claim_result(await self._run("claim", *args), token)

    async def claim_when_woken(
        self,
        conn: aioredis.Redis,
        timeout: float,
        *,
        token: str,
        n: int,
        worker_id: str,
        policy: ClaimPolicy,
        also_wake_on: str | Sequence[str] | None = None,
        watch_queue: bool = True,
    ) -> ClaimResult:
        """Wait up to `timeout` seconds for the queue's wake-up signal, then claim, in one
        round trip on `conn` (a connection of its own: it blocks).

        The claim is pipelined behind a BLPOP, so Redis runs it the moment a job arrives:
        an idle worker's pickup costs one round trip, not two. `also_wake_on` is a list key
        that ends the wait too (the worker's own, pushed to when it stops or is drained), or
        several (a partitioned queue's worker on one server: its own list in each partition).
        A drained worker passes `watch_queue=False`: it must not take the queue's wake-ups,
        which are meant for a worker that can claim.
        """
        args = self._claim_args(token, n, worker_id, policy, (), ())
        script = self._scripts["claim"]
        wake = [self.keys.wake] if watch_queue else []
        if isinstance(also_wake_on, str):
            wake.append(also_wake_on)
        elif also_wake_on is not None:
            wake += also_wake_on
        self.round_trips += 1
        async with conn.pipeline(transaction=False) as pipe:
            pipe.blpop(wake, timeout=timeout)
            keys = self._wire_keys
            # execute_command: redis-py's cluster pipeline refuses its own evalsha (but
            # routes the command by its keys like any other).
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, self._wire_prefix, *args)
            popped, reply = await pipe.execute(raise_on_error=False)
        if isinstance(reply, NoScriptError):  # a restarted or flushed Redis: load and claim
            reply = await self._run("claim", *args)
        elif isinstance(reply, Exception):
            raise reply
        result = self._claim_result(reply, token)
        if isinstance(popped, list | tuple) and len(popped) == 2:
            result.woken_by = str(popped[1])
        return result

    @staticmethod
    def _claim_args(
        token: str,
        n: int,
        worker_id: str,
        policy: ClaimPolicy,
        completions: Iterable[tuple[str, str, str]],
        failures: Iterable[Failure],
    ) -> list[Any]:
        args: list[Any] = [token, n, worker_id, policy.packed]
        args.append("\x1e".join([f"{i}\x1f{t}\x1f{r}" for i, t, r in completions]))
        fails = list(failures)
        args.append(len(fails))
        for f in fails:
            args.extend(
                (
                    f.id,
                    f.token,
                    f.error_type,
                    f.message,
                    f.traceback,
                    f.delay_ms,
                    f.permanent_reason,
                )
            )
        return args

    @staticmethod
    def _claim_result(reply: list[Any], token: str) -> ClaimResult:
        jobs = [
            ClaimedJob(
                id=reply[i],
                name=reply[i + 1],
                payload=reply[i + 2],
                attempt=int(reply[i + 3]),
                max_attempts=int(reply[i + 4]) if reply[i + 4] else None,
                timeout_ms=int(reply[i + 5]) if reply[i + 5] else None,
                backoff=reply[i + 6] or None,
                token=token,
                trace=reply[i + 7] or None,
            )
            for i in range(7, len(reply), CLAIMED_FIELDS)
        ]
        return ClaimResult(
            jobs=jobs,
            stale_acks=int(reply[0]),
            next_delayed_ms=None if int(reply[1]) < 0 else int(reply[1]),
            next_lease_expiry_ms=None if int(reply[2]) < 0 else int(reply[2]),
            paused=bool(int(reply[3])),
            next_hold_release_ms=None if int(reply[4]) < 0 else int(reply[4]),
            recovered=int(reply[5]),
            draining=bool(int(reply[6])),
        )

    async def extend(
        self,
        held: Iterable[tuple[str, str]],
        *,
        lease_ms: int,
        worker_id: str,
        worker_ttl_ms: int,
        keep_cancelled: int = -1,
        cancelled_age_ms: int = -1,
    ) -> Renewal:
        """Renew the leases of `held` (id, token); returns the ids whose lease was lost and
        those cancelled meanwhile. Trims cancelled jobs by (count, age), as claim does the
        completed ones."""
        args: list[Any] = [lease_ms, worker_id, worker_ttl_ms, keep_cancelled, cancelled_age_ms]
        for pair in held:
            args.extend(pair)
        lost, cancelled = await self._run("extend", *args)
        return Renewal([str(i) for i in lost], [str(i) for i in cancelled])

    async def release(self, held: Iterable[tuple[str, str]], *, worker_id: str) -> int:
        """Put held jobs back in line without counting the attempt."""
        args: list[Any] = [worker_id]
        for pair in held:
            args.extend(pair)
        return int(await self._run("release", *args))

    async def progress(
        self, job_id: str, token: str, percent: float | None, message: str, stage: str
    ) -> bool:
        pct = "" if percent is None else repr(float(percent))
        return bool(await self._run("progress", job_id, token, pct, message, stage))

    async def mark_overdue(self, job_id: str, token: str) -> bool:
        """Record on the job that its running attempt passed its timeout (while a handler
        that cannot be interrupted runs on); False if the lease moved on."""
        return bool(await self._run("overdue", job_id, token))

    async def inspect(self) -> dict[str, str]:
        reply = await self._run("inspect", len(Priority), TP_WINDOW_BUCKETS, TOP_GROUPS)
        return {str(reply[i]): str(reply[i + 1]) for i in range(0, len(reply), 2)}

    async def workers(self) -> list[WorkerLoad]:
        """Live workers, the number of jobs each holds, and whether each is drained."""
        reply = await self._run("workers")
        return [
            WorkerLoad(str(reply[i]), int(reply[i + 1]), bool(int(reply[i + 2])))
            for i in range(0, len(reply), 3)
        ]

    async def drain(self, worker_ids: Sequence[str], *, ttl_ms: int) -> int:
        """Tell these workers to claim nothing for `ttl_ms` (renewable); returns how many
        were not drained before. Each newly drained worker is woken to learn it at once."""
        return int(await self._run("drain", "drain", ttl_ms, *worker_ids))

    async def undrain(self, worker_ids: Sequence[str]) -> int:
        """Let these workers claim again (woken at once); returns how many were drained."""
        return int(await self._run("drain", "undrain", 0, *worker_ids))

    async def dead_letters(self, action: str, ids: Sequence[str]) -> int:
        """Replay or purge the given dead letters; returns how many were dead letters."""
        if action not in ("replay", "purge"):
            raise ValueError(f"unknown dead-letter action {action!r}")
        total = 0
        for i in range(0, len(ids), ENQUEUE_CHUNK):
            total += int(await self._run("dead", action, *ids[i : i + ENQUEUE_CHUNK]))
        return total

    async def jobs(
        self,
        state: str,
        *,
        limit: int,
        name: str,
        error_type: str,
        score: str,
        job_id: str,
        mark: str,
    ) -> Page:
        """One page of the jobs in `state` after the position (score, id) of a walk pinned
        by `mark` (see lua/jobs.lua)."""
        reply = await self._run(
            "jobs",
            state,
            limit,
            max(limit, LIST_SCAN),
            len(Priority),
            name,
            error_type,
            score,
            job_id,
            mark,
        )
        rows = []
        for i in range(4, len(reply), 3):
            flat = reply[i + 2]
            h = {str(flat[k]): str(flat[k + 1]) for k in range(0, len(flat), 2)}
            rows.append((str(reply[i]), str(reply[i + 1]), h))
        return Page(rows, bool(int(reply[0])), str(reply[1]), str(reply[2]), str(reply[3]))

    async def verb(self, name: str, job_id: str) -> str:
        """Run the one-job script `name` (remove, retry, cancel); returns its verdict."""
        extra = (CANCEL_BELL,) if name == "cancel" else ()
        return str(await self._run(name, job_id, *extra))

    async def clear(self, lines: Sequence[str]) -> int:
        """Remove every job waiting in `lines`, CLEAR_CHUNK per call; returns how many."""
        total = 0
        while True:
            n = int(await self._run("clear", CLEAR_CHUNK, *lines))
            total += n
            if n < CLEAR_CHUNK:
                return total

    async def obliterate(self, *, force: bool) -> tuple[int, int]:
        """Delete every key of the queue unless jobs are active and not `force`.

        Returns (active jobs, keys removed); nothing is removed when the first is non-zero
        without `force`. The script pauses the queue first, so no worker claims meanwhile;
        then SCAN finds the keys in bounded steps: the per-id keys (job hashes, dedup keys,
        hold sets, rate and circuit windows, wake lists) have no index to enumerate them by,
        and SCAN, unlike KEYS, never blocks Redis for long. The meta hash (the paused flag)
        goes last. Keys written while it runs (an enqueue) may survive it.
        """
        active = int(await self._run("obliterate", "1" if force else ""))
        if active and not force:
            return active, 0
        removed = 0
        batch: list[str] = []
        async for key in self.conn.scan_iter(match=self.keys.pattern(), count=OBLITERATE_CHUNK):
            name = key if isinstance(key, str) else key.decode()
            if name != self.keys.meta:
                batch.append(name)
            if len(batch) >= OBLITERATE_CHUNK:
                removed += int(await self.conn.unlink(*batch))
                batch = []
        if batch:
            removed += int(await self.conn.unlink(*batch))
        removed += int(await self.conn.unlink(self.keys.meta))
        self.round_trips += 1
        return active, removed

    @staticmethod
    async def inspect_many(
        conn: aioredis.Redis, engines: Sequence[Engine]
    ) -> list[dict[str, str | int]]:
        """`inspect` of many queues in one pipeline on `conn` (`Client.queues`). The script is
        called by its hash directly: redis-py's pipelined scripts would first ask Redis
        whether each is loaded, a round trip more."""
        if not engines:
            return []
        wire = engines[0]._wire
        if wire is not None:
            replies = await wire.pipeline([(eng._inspect_head(), ()) for eng in engines])
            for eng in engines:
                eng.round_trips += 1
        else:
            replies = await Engine._inspect_pipelined(conn, engines)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        # Fields as they come (names are text, counts integers): a str() of each of a hundred
        # queues' fifty values was a fifth of what `Client.queues()` spent in Python.
        return [dict(zip(r[::2], r[1::2], strict=True)) for r in replies]

    @staticmethod
    async def _inspect_pipelined(conn: aioredis.Redis, engines: Sequence[Engine]) -> list[Any]:
        script = engines[0]._scripts["inspect"]
        for eng in engines:
            eng.round_trips += 1
        return await evalsha_pipeline(conn, script, [e._inspect_args() for e in engines])

    def _inspect_head(self) -> ScriptHead:
        """The whole inspect call, packed once: its arguments never change."""
        head = self._heads.get("inspect:all")
        if head is None:
            fixed = [self._wire_prefix, len(Priority), TP_WINDOW_BUCKETS, TOP_GROUPS]
            head = ScriptHead(self._scripts["inspect"], self._wire_keys, fixed)
            self._heads["inspect:all"] = head
        return head

    def _inspect_args(self) -> tuple[list[bytes], list[Any]]:
        """The inspect script's arguments after its hash, as bytes, built once: encoding them
        costs more than anything else `inspect_many` does per queue, and they never change."""
        if self._inspect_packed is None:
            args = (len(Priority), TP_WINDOW_BUCKETS, TOP_GROUPS)
            self._inspect_packed = (
                self._wire_keys,
                [self._wire_prefix, *(str(a).encode() for a in args)],
            )
        return self._inspect_packed

    async def job_hash(self, job_id: str) -> dict[str, str]:
        self.round_trips += 1
        raw: dict[str, str] = await self.conn.hgetall(self.keys.job(job_id))  # type: ignore[assignment]
        return raw

    async def job_and_lease(self, job_id: str) -> tuple[dict[str, str], float | None]:
        """The job's hash and its lease deadline (ms; None unless active), in one pipeline."""
        self.round_trips += 1
        async with self.conn.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.job(job_id))
            pipe.zscore(self.keys.active, job_id)
            raw, score = await pipe.execute()
        return raw, score

    async def job_hashes(self, ids: Sequence[str], fields: Sequence[str]) -> list[list[Any]]:
        """Selected fields of many jobs in one pipeline."""
        if not ids:
            return []
        self.round_trips += 1
        async with self.conn.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(self.keys.job(job_id), list(fields))
            return list(await pipe.execute())

    async def group(self, action: str, group: str, *args: Any) -> Any:
        """Run the group script (lua/group.lua): limits, pause, resume or stats of `group`."""
        return await self._run("group", action, group, *args)

    async def set_paused(self, paused: bool) -> None:
        await self._run("pause", "1" if paused else "0")
