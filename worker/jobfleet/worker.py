"""The worker runtime: claim jobs, run handlers, renew leases, ack in batches, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import random
import signal
import socket
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from . import metrics, status, tracing
from . import outcome as oc
from .backoff import Backoff, Retries
from .batches import Batches
from .client import Client
from .cluster import is_cluster
from .connection import (
    REDIS_DOWN,
    blocking_client,
    check_eviction_policy,
    close_client,
    connect,
)
from .context import JobContext
from .cron import Scheduler
from .engine import (
    CANCEL_BELL,
    TOP_GROUPS,
    ClaimedJob,
    ClaimPolicy,
    ClaimResult,
    Engine,
    Failure,
    Renewal,
    flow_json,
)
from .errors import ConfigError
from .health import HealthServer
from .hooks import FailedJob, FailureHook, Hook, Hooks
from .joblog import JobLog
from .keys import partition_names
from .outbox import Outbox
from .partitions import Tour, check_descriptor, home_of, merge_stats
from .process_pool import Killed, ProcessPool
from .registry import Handler, default_registry
from .settings import WorkerSettings, redact_url
from .slots import Running, Slots
from .threads import Threads
from .waits import wait_event

log = logging.getLogger("jobfleet.worker")

FLUSH_RETRY = Backoff(base=0.2, cap=1.0, jitter="none")  # exit's flush: 0.2 s, 0.4 s ... 1 s
IDLE_WAKE = 5.0  # the longest an idle worker blocks before it looks again (a backstop)
CIRCUIT_LEVELS = {"closed": 0.0, "half": 0.5, "open": 1.0}


class HandlerSource(Protocol):
    """Where a worker finds the handler of a job name (a Registry, or the sidecar)."""

    def get(self, name: str) -> Handler | None: ...


@dataclass
class WorkerCounters:
    """What this worker did, for tests, benchmarks and logs."""

    completed: int = 0
    failed: int = 0
    released: int = 0
    lost: int = 0
    abandoned: int = 0  # left running in a thread at exit, neither released nor failed
    cancelled: int = 0  # cancelled while running (Client.cancel): the handler was stopped
    claims: int = 0
    stale_acks: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)


class Worker:
    """Runs the jobs of one queue with a fixed number of concurrent slots.

    >>> worker = Worker(WorkerSettings(redis_url=url, queue=QueueSettings(name="emails")))
    >>> await worker.run()          # until worker.stop() or SIGTERM (with install_signals)
    """

    def __init__(
        self,
        settings: WorkerSettings,
        handlers: HandlerSource | None = None,
        *,
        connection: aioredis.Redis | None = None,
        worker_id: str | None = None,
        on_failure: FailureHook | None = None,
    ) -> None:
        self.settings = settings
        self.queue = settings.queue
        self.handlers: HandlerSource = handlers if handlers is not None else default_registry
        # $HOSTNAME first: it is the pod's name on Kubernetes (and under the e2e harness, whose
        # pods share one host), which is how the operator finds a pod's workers on scale-in.
        host = os.environ.get("HOSTNAME") or socket.gethostname()
        self.id = worker_id or f"{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._own_conn = connection is None
        self.conn = connection if connection is not None else connect(settings.redis_url, retries=1)
        # A partitioned queue (docs/partitions.md): one engine per partition and, last, the
        # plain queue (where producers write before any worker recorded the partitions). The
        # worker's home partition is `self.engine`: its idle wait, own wake list and drain
        # flag live there; `_tour` picks where each claim goes. None: not partitioned, and
        # every path is the one it always was.
        count = self.queue.partitions
        self._tour: Tour | None = None
        if count == 1:
            self.engines = [Engine(self.conn, self.queue.name)]
            self.engine = self.engines[0]
        else:
            names = [*partition_names(self.queue.name, count), self.queue.name]
            self.engines = [Engine(self.conn, n) for n in names]
            self._tour = Tour(len(self.engines), home_of(self.id, count))
            self.engine = self.engines[self._tour.home]
        lease_ms = int(self.queue.lease * 1000)
        retention = self.queue.retention
        self.policy = ClaimPolicy(
            lease_ms=lease_ms,
            worker_ttl_ms=max(lease_ms, 15_000),
            max_attempts=self.queue.max_attempts,
            poison_after=self.queue.poison_after,
            keep_done=retention.completed_count,
            done_age_ms=int(retention.completed_age * 1000),
            keep_dead=-1 if retention.dead_count is None else retention.dead_count,
            dead_age_ms=-1 if retention.dead_age is None else int(retention.dead_age * 1000),
            flow=flow_json(
                self.queue.rate_limit,
                self.queue.circuit_breaker,
                self.queue.group_concurrency,
                self.queue.group_rate_limit,
                partitions=count,
            ),
        )
        # At most half the slots per claim when no job runs: the next claim then travels to
        # Redis while the jobs of the last one run, instead of Redis and the handlers taking
        # turns. While jobs run, every free slot (bench/RESULTS.md "Claim sizing").
        per_claim = min(settings.batch_size, max(1, (self.queue.concurrency + 1) // 2))
        most = min(settings.batch_size, self.queue.concurrency)
        self.slots = Slots(self.queue.concurrency, per_claim, most)
        self.outbox = Outbox()
        self.batches = Batches(self.slots, self._execute_batch)
        self.counters = WorkerCounters()
        self._stop_requested = asyncio.Event()
        self._drain_deadline = float("inf")
        self._tokens = itertools.count(1)
        self._redis_ok = False
        self._last_loop = time.monotonic()
        self.threads = Threads(
            settings.sync_threads,
            mark_overdue=self.engine.mark_overdue if self._tour is None else self._mark_overdue,
            timed_out=self._timed_out,
        )
        self._processes: ProcessPool | None = None
        if self.queue.isolation == "process" and settings.mode == "inProcess":
            if not settings.handlers:
                raise ConfigError(
                    "isolation 'process' needs `handlers`: the modules each child imports"
                )
            # A child per slot, but never more than the threads thread isolation would use:
            # each child is a whole interpreter with the handlers' imports.
            size = min(self.queue.concurrency, settings.sync_threads)
            self._processes = ProcessPool(list(settings.handlers), size)
        # Every worker runs the queue's schedules; tick ids make the fleet enqueue each once.
        # Built here so a bad schedule stops the worker at startup with a clear message.
        # A partitioned queue's ticks go to one fixed partition (Client.cron_engine), where
        # each tick's id dedups it as in any queue.
        cron_queue = self.queue.name if count == 1 else partition_names(self.queue.name, count)[0]
        self.scheduler = Scheduler(
            Client(connection=self.conn, queue=self.queue.name),
            cron_queue,
            list(self.queue.schedules),
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self.http: HealthServer | None = None
        self.on_listening: Callable[[int], None] | None = None  # told the port once it is open
        self._m_inflight = metrics.IN_FLIGHT.labels(self.queue.name)
        # At 0 from the start: rate()/increase() never count a series' first sample, so a
        # counter born at 1 would hide the first Redis error from alerts and the dashboard.
        metrics.REDIS_ERRORS.labels(self.queue.name)
        self._series: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._own_wake_key = self.engine.keys.worker_wake(self.id)
        # What the idle wait watches besides the queue's bell. A cancel rings the own wake
        # list in the cancelled job's partition: on one server the wait watches each of them;
        # on a cluster only the home's (one BLPOP, one slot), and a cancel of a job of another
        # partition reaches the worker with its next lease renewal.
        self._wake_keys: str | list[str] = self._own_wake_key
        if self._tour is not None and not is_cluster(self.conn):
            self._wake_keys = [self._own_wake_key] + [
                e.keys.worker_wake(self.id) for e in self.engines if e is not self.engine
            ]
        self._due_timer: asyncio.TimerHandle | None = None  # ends the wait when a job is due
        self._cuts: set[asyncio.Task[None]] = set()  # pushes to the own wake list in flight
        self._draining = False  # drained by the operator (scale-in): claim nothing new
        # Observability (joblog, metrics, tracing, hooks, status): one call per outcome.
        self.joblog = JobLog(
            self.queue.name, self.id, jobs=settings.log_jobs, payload=settings.log_payload
        )
        self._error_labels = metrics.ErrorTypeLabels()
        self._m_claim = metrics.CLAIM_SECONDS.labels(self.queue.name)
        self._failed_types: dict[str, str] = {}  # job id -> error type, until _finished
        self._tracing = tracing.Consumer.build(self.queue.name, self.id)
        self._traced = False  # whether the jobs of the last claim get spans (`_absorb`)
        registered = getattr(self.handlers, "failure_hooks", [])
        self.hooks = Hooks([*registered, *([Hook(on_failure)] if on_failure else [])])
        self._redis_state = status.RedisState()
        self._last_claim: float | None = None
        # Set when the own wake list said a job of ours was cancelled: renew at once, and
        # learn which from the renewal's reply.
        self._renew_now = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self.slots.running)

    @property
    def stopping(self) -> bool:
        return self.slots.stopping

    @property
    def draining(self) -> bool:
        """Drained (`Client.drain_workers`): running jobs finish, nothing new is claimed."""
        return self._draining

    def stop(self, grace: float | None = None) -> None:
        """Begin a graceful stop: claim nothing more, let running jobs finish for `grace`
        seconds (default: the settings' grace period less its margin), release the rest."""
        if self.slots.stopping:
            return
        self.slots.stop()  # wakes the main loop, and the waker to hand back its slots
        budget = (
            self.settings.grace_period - self.settings.shutdown_margin if grace is None else grace
        )
        self._drain_deadline = time.monotonic() + max(budget, 0.0)
        self.batches.release_all(self.outbox)
        self._plan_wake(None)
        if self.slots.reserved:
            self._cut(self._stop_claiming())  # the waker's BLPOP would wait out its timeout
        self._stop_requested.set()
        log.info("stopping: %d jobs in flight, %.1f s to finish them", self.in_flight, budget)

    def install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)

    async def run(self) -> WorkerCounters:
        """Work until `stop()`; returns what was done. Exits cleanly with Redis down."""
        self._loop = asyncio.get_running_loop()
        if self.settings.http_port is not None:
            self.http = HealthServer(
                self.settings.http_host,
                self.settings.http_port,
                alive=self._alive,
                ready=lambda: self._redis_ok and not self.stopping and not self._draining,
                status=self.status,
            )
            await self.http.start()
            if self.on_listening is not None:
                self.on_listening(self.http.port)
        try:
            await self._check_redis()
        except BaseException:  # a refusal (another number of partitions): nothing to drain
            if self.http is not None:
                await self.http.stop()
            if self._own_conn:
                await self.conn.aclose()
            raise
        helpers = [
            asyncio.create_task(self._waker(), name="jobfleet-waker"),
            asyncio.create_task(self._renewer(), name="jobfleet-renewer"),
            asyncio.create_task(self.scheduler.run(self._stop_requested), name="jobfleet-cron"),
        ]
        if self.http is not None:  # the depth gauges are for a scraper; none, no reads
            helpers.append(asyncio.create_task(self._depth_reporter(), name="jobfleet-depth"))
        try:
            await self._main_loop()
            await self._finish()
        finally:
            self._plan_wake(None)
            for t in helpers:
                t.cancel()
            await asyncio.gather(*helpers, *self._cuts, return_exceptions=True)
            await self.hooks.settle(self.settings.shutdown_margin / 2)
            self.threads.shutdown()
            if self._processes is not None:
                await self._processes.close()
            if self.http is not None:
                await self.http.stop()
            if self._own_conn:
                await self.conn.aclose()
        log.info(
            "stopped: %d completed, %d failed, %d released",
            self.counters.completed,
            self.counters.failed,
            self.counters.released,
        )
        return self.counters

    async def _check_redis(self) -> None:
        retries = Retries()
        while not self.stopping:
            try:
                await check_eviction_policy(
                    self.conn, allow_volatile=self.settings.allow_volatile_eviction
                )
                if await check_descriptor(self.conn, self.queue.name, self.queue.partitions):
                    await self._carry_pause_over()
                self._set_redis(True)
                log.info(
                    "worker %s on queue %r at %s, concurrency %d",
                    self.id,
                    self.queue.name,
                    redact_url(self.settings.redis_url),
                    self.queue.concurrency,
                )
                return
            except REDIS_DOWN as exc:
                await self._redis_down(exc, retries)

    def _alive(self) -> bool:
        # The loop turns at least every IDLE_WAKE seconds; far longer means it is wedged
        # (a sync handler called on the loop by mistake, say).
        return time.monotonic() - self._last_loop < max(60.0, 4 * IDLE_WAKE)

    def _set_redis(self, ok: bool) -> None:
        self._redis_ok = ok
        self._redis_state.set(ok, time.time())

    def status(self) -> dict[str, Any]:
        """The `/status` document (jobfleet.status)."""
        return status.document(
            queue=self.queue.name,
            worker_id=self.id,
            in_flight=self.in_flight,
            concurrency=self.queue.concurrency,
            last_claim=self._last_claim,
            redis=self._redis_state,
            draining=self._draining,
            stopping=self.stopping,
        )

    async def _depth_reporter(self) -> None:
        """The queue's counts as gauges, one inspect call per DEPTH_INTERVAL (jittered, so a
        fleet started at once spreads its reads)."""
        await asyncio.sleep(random.uniform(0, 1))
        while True:
            with contextlib.suppress(RedisError, *REDIS_DOWN):
                if self._tour is None:
                    raw: Mapping[str, str | int] = await self.engine.inspect()
                else:  # one series per logical queue
                    raw = merge_stats(
                        await Engine.inspect_many(self.conn, self.engines), TOP_GROUPS
                    )
                metrics.report_depth(self.queue.name, raw)
            await asyncio.sleep(metrics.DEPTH_INTERVAL * random.uniform(0.9, 1.1))

    async def _carry_pause_over(self) -> None:
        """A pause given before the partitions were recorded reached only the plain queue (a
        Client then knew no partitions): the worker that records them carries it over, so
        the logical queue stays paused as its owner asked."""
        plain = self.engines[-1]
        if await self.conn.hget(plain.keys.meta, "paused") in ("1", b"1"):
            await asyncio.gather(*(e.set_paused(True) for e in self.engines[:-1]))
            log.info("queue %r was paused before its partitions: paused them too", plain.queue)

    async def _redis_down(self, exc: BaseException, retries: Retries) -> None:
        """Log, count and sleep 1 s -> 30 s with jitter (`retries`)."""
        self._set_redis(False)
        metrics.REDIS_ERRORS.labels(self.queue.name).inc()
        # redis-py's messages name host and port, never the password.
        delay = retries.next_delay()
        log.warning(
            "Redis unavailable (%s: %s); retrying in %.1f s", type(exc).__name__, exc, delay
        )
        await wait_event(self._stop_requested, delay)  # a stop should not wait out the backoff

    # -- the loop -----------------------------------------------------------------------

    async def _main_loop(self) -> None:
        slots, outbox = self.slots, self.outbox
        retries = Retries()
        while True:
            self._last_loop = time.monotonic()
            has_acks = outbox.has_acks
            want = slots.to_claim(has_acks=has_acks)
            if slots.stopping and not (slots.running or has_acks or slots.reserved):
                return
            if slots.stopping and time.monotonic() >= self._drain_deadline:
                return
            if want > 0 or has_acks:
                try:
                    result = await self._settle_and_claim(want)
                except REDIS_DOWN as exc:
                    await self._redis_down(exc, retries)
                    continue
                retries.reset()
                self._absorb(result)
                if slots.stopping or (len(result.jobs) == want and want > 0):
                    continue
                if outbox.has_acks:
                    continue
                if self._tour is not None and want > 0 and not self._tour.dry:
                    continue  # visit the next partition before waiting for work
            if self._tour is not None and self._tour.dry:
                self._tour.rest()  # the waker waits at home; the next tour starts there
            # Nothing to take now. Free slots go to the waker, which waits for new work with
            # a claim for them queued right behind its wait; then sleep until a job finishes,
            # the waker returns, or a stop begins.
            slots.reserve_for_waker()
            if slots.stopping:
                await slots.wait(self._drain_deadline - time.monotonic())
            else:
                await slots.wait(IDLE_WAKE + 1.0)

    def _absorb(self, result: ClaimResult) -> None:
        """Take in what a claim returned: start its jobs, count, and plan the next wake-up."""
        if not self._redis_ok:
            self._set_redis(True)
        self._last_claim = time.time()
        self.counters.claims += 1
        if self._tracing is not None and result.jobs:
            self._traced = self._tracing.active()  # once per claim (tracing.py says why)
        if result.draining != self._draining:
            self._draining = result.draining
            log.info(
                "%s: %d jobs in flight",
                "drained, claiming nothing new" if self._draining else "drain ended, claiming",
                self.in_flight,
            )
        if result.recovered:
            metrics.RECOVERIES.labels(self.queue.name, "recovered").inc(result.recovered)
            log.warning("recovered %d jobs whose lease expired", result.recovered)
        if result.stale_acks:
            self.counters.stale_acks += result.stale_acks
            metrics.STALE_ACKS.labels(self.queue.name).inc(result.stale_acks)
        for job in result.jobs:
            if self.slots.stopping:  # claimed by a wait for work that stop() cut short
                self.outbox.release(job)
            else:
                self._start(job)
        self._m_inflight.set(len(self.slots.running))
        hints = (result.next_delayed_ms, result.next_hold_release_ms, result.next_lease_expiry_ms)
        due = [ms for ms in hints if ms is not None]
        self._plan_wake(min(due) / 1000.0 if due else None)

    def _plan_wake(self, seconds: float | None) -> None:
        """Arm the one timer that ends the waker's wait when the next job becomes claimable,
        `seconds` from now (None: nothing is due; only cancel it).

        Every claim reply re-plans it: the reply's hints are the newest view of Redis, on
        Redis's clock. Redis 7.0 times BLPOP in 100 ms steps (hz 10), so the BLPOP timeout
        cannot end a wait on time; it stays as the backstop. A timer that fires a hair early
        only costs a claim that finds nothing yet and re-plans from its fresh hint.
        """
        if self._due_timer is not None:
            self._due_timer.cancel()
            self._due_timer = None
        if seconds is None or seconds >= IDLE_WAKE or self.slots.stopping or self._loop is None:
            return
        self._due_timer = self._loop.call_later(seconds, self._due)

    def _due(self) -> None:
        self._due_timer = None
        if self.slots.stopping:
            return
        if self.slots.reserved:
            self._cut_wait("due")
        else:
            # Every slot is busy (or a claim is on its way, and its reply re-plans): the job
            # is another worker's to take, and the wake-up that told of it may have been
            # ours, so ring the queue's bell for an idle one.
            self._cut_wait("due", self.engine.keys.wake)

    async def _settle_and_claim(self, n: int) -> ClaimResult:
        """Send every finished job's outcome and claim up to `n` new jobs, in one call.

        On failure the outcomes go back to the outbox to be sent again; the lease token makes
        a resend of an outcome Redis already applied a harmless no-op.
        """
        completions, failures = self.outbox.take_acks()
        try:
            started = time.perf_counter()
            if self._tour is None:
                result = await self.engine.claim(
                    token=f"{self.id}:{next(self._tokens)}",
                    n=n,
                    worker_id=self.id,
                    policy=self.policy,
                    completions=completions,
                    failures=failures,
                )
            else:
                result = await self._claim_partitioned(n, completions, failures)
            self._m_claim.observe(time.perf_counter() - started)
            return result
        except BaseException:
            self.outbox.restore_acks(completions, failures)
            raise

    def _token(self, index: int) -> str:
        """A claim's lease token; in a partitioned queue it ends with the partition's index
        (`_engine_of`), so every outcome, renewal and release finds the job's partition."""
        if self._tour is None:
            return f"{self.id}:{next(self._tokens)}"
        return f"{self.id}:{next(self._tokens)}@{index}"

    def _engine_of(self, token: str) -> Engine:
        """The partition of the job claimed under `token`."""
        if self._tour is None:
            return self.engine
        return self.engines[int(token.rpartition("@")[2])]

    async def _mark_overdue(self, job_id: str, token: str) -> bool:
        return await self._engine_of(token).mark_overdue(job_id, token)

    async def _claim_partitioned(
        self, n: int, completions: list[tuple[str, str, str]], failures: list[Failure]
    ) -> ClaimResult:
        """Claim up to `n` jobs where the tour stands, with the outcomes of that partition's
        jobs; the outcomes of other partitions' jobs go to theirs at the same time (a claim of
        none there: no script touches two partitions)."""
        assert self._tour is not None
        at = self._tour.at
        acks: dict[int, tuple[list[tuple[str, str, str]], list[Failure]]] = {at: ([], [])}
        for c in completions:
            acks.setdefault(self._index_of(c[1]), ([], []))[0].append(c)
        for f in failures:
            acks.setdefault(self._index_of(f.token), ([], []))[1].append(f)
        calls = [
            self.engines[i].claim(
                token=self._token(i),
                n=n if i == at else 0,
                worker_id=self.id,
                policy=self.policy,
                completions=done,
                failures=failed,
            )
            for i, (done, failed) in acks.items()
        ]
        result, *others = await asyncio.gather(*calls)
        for other in others:
            result.stale_acks += other.stale_acks
            result.recovered += other.recovered
        self._tour.claimed(len(result.jobs), n)
        return result

    @staticmethod
    def _index_of(token: str) -> int:
        return int(token.rpartition("@")[2])

    async def _waker(self) -> None:
        """Wait for new work on behalf of the main loop's free slots, without polling.

        The claim for those slots is pipelined behind a BLPOP of the queue's wake-up list on
        a connection of its own: Redis runs it the moment a job arrives, so an idle worker
        picks a job up in one round trip instead of two.
        """
        blocking = self._blocking_client()
        retries = Retries()
        try:
            while True:
                n = await self.slots.lent_to_waker()
                if n == 0:  # a stop began
                    return
                error: BaseException | None = None
                try:
                    result = await self.engine.claim_when_woken(
                        blocking,
                        IDLE_WAKE,  # the backstop: a due job ends the wait through _due()
                        token=self._token(self._tour.home if self._tour is not None else 0),
                        n=n,
                        worker_id=self.id,
                        policy=self.policy,
                        also_wake_on=self._wake_keys,
                        watch_queue=not self._draining,  # leave the queue's wake-ups to others
                    )
                except (RedisError, *REDIS_DOWN) as exc:
                    error = exc
                finally:
                    # The slots are the main loop's again, before any backoff: on an error it
                    # retries on its own schedule.
                    self.slots.return_reserved()
                if error is not None:
                    await self._redis_down(error, retries)
                    continue
                self._absorb(result)  # here, not in the main loop: a loop turn sooner
                if result.woken_by == CANCEL_BELL:
                    self._renew_now.set()
                if self._tour is None:
                    self.slots.waker_claimed(len(result.jobs), n)
                else:
                    # The home partition's answer: a short one sends the main loop on to the
                    # other partitions (never "the line is empty": they may not be).
                    self._tour.claimed(len(result.jobs), n)
                    self.slots.waker_claimed(n, n)
                retries.reset()
        finally:
            await close_client(blocking)

    def _cut_wait(self, why: str, key: str | None = None) -> None:
        """End a wait now (a job due) rather than at its timeout: push to this worker's own
        wake list, which its waker's BLPOP watches too (or to `key`)."""
        self._cut(self._push_wake(key or self._own_wake_key, why))

    def _cut(self, push: Coroutine[Any, Any, None]) -> None:
        """Run `push` in the background; `run` waits for those in flight before it ends."""
        if self._loop is None:
            push.close()
            return
        task = self._loop.create_task(push)
        self._cuts.add(task)
        task.add_done_callback(self._cuts.discard)

    async def _stop_claiming(self) -> None:
        """End the waker's wait for a stop so that the claim queued behind it in Redis takes
        nothing: this worker drains itself (claim.lua reads the flag) before ringing its own
        wake list. Without it, a job released by the stop could be claimed straight back and
        left to its lease."""
        ttl = self.settings.grace_period + max(self.settings.shutdown_margin, 1.0) + IDLE_WAKE
        with contextlib.suppress(RedisError, *REDIS_DOWN):
            if await self.engine.drain([self.id], ttl_ms=int(ttl * 1000)):
                return  # drain.lua rang the own wake list as it set the flag
        await self._push_wake(self._own_wake_key, "stop")

    async def _push_wake(self, key: str, why: str) -> None:
        with contextlib.suppress(RedisError, *REDIS_DOWN):
            async with self.conn.pipeline(transaction=False) as pipe:
                pipe.rpush(key, why)
                pipe.ltrim(key, 0, 0)  # a bell, not a count: one token wakes one waiter
                pipe.pexpire(key, 60_000)  # gone even if nobody pops it
                await pipe.execute()

    def _blocking_client(self) -> aioredis.Redis:
        """A connection of its own for BLPOP, so claims never queue behind it, with a read
        timeout longer than any wait we ask of it (redis-py's default is 5 s)."""
        return blocking_client(self.conn, IDLE_WAKE + 10)

    async def _renewer(self) -> None:
        """Renew every lease this worker holds, in one call, three times per lease."""
        interval = self.queue.lease / 3
        while True:
            # A cancel of one of our jobs rings our wake list (cancel.lua): renew now, and the
            # reply names it; otherwise every third of a lease.
            await wait_event(self._renew_now, interval)
            self._renew_now.clear()
            held = [(r.job.id, r.job.token) for r in self.slots.running.values() if not r.lost]
            try:
                renewal = await self._extend(held)
            except REDIS_DOWN:
                metrics.REDIS_ERRORS.labels(self.queue.name).inc()
                continue
            for job_id in renewal.lost:
                running = self.slots.running.get(job_id)
                if running is not None:
                    self._lose(running)
            for job_id in renewal.cancelled:
                running = self.slots.running.get(job_id)
                if running is not None:
                    self._cancel(running)
            if self.queue.circuit_breaker is not None:
                await self._report_circuits()

    async def _extend(self, held: list[tuple[str, str]]) -> Renewal:
        """Renew `held`, each lease in its job's partition; the home partition's call is made
        even with nothing held there (it keeps this worker registered)."""
        by_engine: dict[int, list[tuple[str, str]]] = {id(self.engine): []}
        engines = {id(self.engine): self.engine}
        for pair in held:
            eng = self._engine_of(pair[1])
            by_engine.setdefault(id(eng), []).append(pair)
            engines[id(eng)] = eng
        renewals = await asyncio.gather(
            *(
                engines[key].extend(
                    pairs,
                    lease_ms=self.policy.lease_ms,
                    worker_id=self.id,
                    worker_ttl_ms=self.policy.worker_ttl_ms,
                    keep_cancelled=self.policy.keep_done,
                    cancelled_age_ms=self.policy.done_age_ms,
                )
                for key, pairs in by_engine.items()
            )
        )
        if len(renewals) == 1:
            return renewals[0]
        return Renewal(
            [i for r in renewals for i in r.lost], [i for r in renewals for i in r.cancelled]
        )

    async def _report_circuits(self) -> None:
        """Mirror the fleet's circuit states into this worker's metrics, for alerting."""
        try:
            raw = await self.conn.hgetall(self.engine.keys.cb)
        except REDIS_DOWN:
            return
        levels = {}
        if self.queue.circuit_breaker is not None and self.queue.circuit_breaker.scope == "queue":
            # A breaker that never tripped has no state in Redis yet: it is closed, and
            # saying so tells "closed" apart from "not scraped".
            levels["*"] = CIRCUIT_LEVELS["closed"]
        for name, value in raw.items():
            scope, _, attr = str(name).rpartition(":")
            if attr == "state":
                levels[scope] = CIRCUIT_LEVELS.get(str(value), 0.0)
        for scope, level in levels.items():
            metrics.CIRCUIT.labels(self.queue.name, scope).set(level)

    def _lose(self, running: Running) -> None:
        """Another worker may be running this job now; our outcome would be rejected."""
        running.lost = True
        metrics.RECOVERIES.labels(self.queue.name, "lost").inc()
        log.warning("lease of job %s was lost; abandoning this attempt", running.job.id)
        if self.batches.forget_lost(running):  # never started: just forget it
            self.counters.lost += 1
        elif running.task is not None and len(self._jobs_of(running.task)) == 1:
            running.task.cancel()
        # A started batch runs on for its other jobs; the token check drops this one's outcome.

    def _cancel(self, running: Running) -> None:
        """The job was cancelled while running (Client.cancel): it is already final in Redis;
        stop its handler. A thread cannot be stopped: it runs to its end, keeping the slot,
        and its outcome is dropped; a child process is killed."""
        running.lost = running.cancelled = True
        log.info("job %s was cancelled; stopping its handler", running.job.id)
        if self.batches.forget_lost(running):  # never started
            self.counters.cancelled += 1
        elif running.task is not None and len(self._jobs_of(running.task)) == 1:
            running.task.cancel()
        # A started batch runs on for its other jobs; the token check drops this one's outcome.

    def _jobs_of(self, task: asyncio.Task[None]) -> list[ClaimedJob]:
        return [r.job for r in self.slots.running.values() if r.task is task]

    # -- running one job ----------------------------------------------------------------

    def _start(self, job: ClaimedJob) -> None:
        handler = self.handlers.get(job.name)
        if handler is not None and handler.batch_size:
            self.batches.add(handler, job)
            return
        task = asyncio.create_task(self._execute(handler, job))
        self.slots.occupy(Running(job, task))

    async def _execute(self, handler: Handler | None, job: ClaimedJob) -> None:
        name = job.name if handler is not None else "<unknown>"
        started = time.perf_counter()
        outcome = "released"
        try:
            if handler is None:
                outcome = self._record(job, oc.unknown_handler(job, self.queue))
                return
            try:
                result = await self._call(handler, [job])
            except asyncio.CancelledError:
                outcome = self._cancelled(job)
                raise
            except Exception as exc:
                outcome = self._record(job, oc.classify(job, self.queue, error=exc), exc)
            else:
                outcome = self._record(job, oc.classify(job, self.queue, result=result))
        finally:
            self._finished(job, name, outcome, time.perf_counter() - started)

    # -- batch handlers (held in `self.batches` until full) -----------------------------

    async def _execute_batch(self, handler: Handler, jobs: list[ClaimedJob]) -> None:
        started = time.perf_counter()
        outcomes = ["released"] * len(jobs)
        try:
            try:
                results = await self._call(handler, jobs)
                if results is None:
                    results = [None] * len(jobs)
                if not isinstance(results, list | tuple) or len(results) != len(jobs):
                    got = len(results) if isinstance(results, list | tuple) else "no list"
                    raise TypeError(
                        f"batch handler {handler.name!r} must return one result per job "
                        f"({len(jobs)}), got {got}"
                    )
            except asyncio.CancelledError:
                outcomes = [self._cancelled(job) for job in jobs]
                raise
            except Exception as exc:
                outcomes = [
                    self._record(job, oc.classify(job, self.queue, error=exc), exc) for job in jobs
                ]
            else:
                outcomes = [
                    self._record(
                        job,
                        oc.classify(job, self.queue, error=r)
                        if isinstance(r, Exception)
                        else oc.classify(job, self.queue, result=r),
                        r if isinstance(r, Exception) else None,
                    )
                    for job, r in zip(jobs, results, strict=True)
                ]
        finally:
            seconds = time.perf_counter() - started
            for job, outcome in zip(jobs, outcomes, strict=True):
                self._finished(job, handler.name, outcome, seconds)

    # -- outcomes -------------------------------------------------------------------------

    def _record(
        self, job: ClaimedJob, verdict: oc.Verdict, exc: BaseException | None = None
    ) -> str:
        """Put an attempt's outcome in the outbox, for the next claim; returns its name."""
        if verdict.failure is None:
            self.outbox.complete(job, verdict.result_json)
        else:
            self.outbox.fail(verdict.failure)
            self._failed(job, verdict, exc)
        return verdict.outcome

    def _failed(self, job: ClaimedJob, verdict: oc.Verdict, exc: BaseException | None) -> None:
        """A failed attempt's signals: the error-type metric, the span's error, the hooks."""
        assert verdict.failure is not None
        error_type = verdict.failure.error_type
        self._failed_types[job.id] = error_type
        label = self._error_labels.label(error_type)
        metrics.FAILURES.labels(self.queue.name, job.name, label, verdict.outcome).inc()
        if self._tracing is not None:
            self._tracing.error(job.id, exc, error_type)
        if self.hooks:
            failed = FailedJob(
                queue=self.queue.name,
                id=job.id,
                name=job.name,
                attempt=job.attempt,
                max_attempts=job.max_attempts or self.queue.max_attempts,
                payload=json.loads(job.payload),
                error_type=error_type,
                dead=verdict.outcome == "dead",
                worker_id=self.id,
            )
            self.hooks.failed(failed, exc or LookupError(verdict.failure.message))

    async def _call(self, handler: Handler, jobs: list[ClaimedJob]) -> Any:
        """Run the handler on one job, or on a list of them for a batch handler."""
        loop = asyncio.get_running_loop()
        ctxs = [
            JobContext(
                id=job.id,
                name=job.name,
                queue=self.queue.name,
                payload=json.loads(job.payload),
                attempt=job.attempt,
                max_attempts=job.max_attempts or self.queue.max_attempts,
                token=job.token,
                _sink=(self.engine if self._tour is None else self._engine_of(job.token)).progress,
                _loop=loop,
            )
            for job in jobs
        ]
        arg: Any = ctxs if handler.batch_size else ctxs[0]
        if self._traced:
            assert self._tracing is not None
            for job in jobs:
                self._tracing.start(job)
            with self._tracing.current(jobs[0].id if len(jobs) == 1 else ""):
                return await self._run_handler(handler, arg, ctxs, jobs)
        return await self._run_handler(handler, arg, ctxs, jobs)

    async def _run_handler(
        self, handler: Handler, arg: Any, ctxs: list[JobContext], jobs: list[ClaimedJob]
    ) -> Any:
        timeouts = [job.timeout_ms / 1000.0 for job in jobs if job.timeout_ms]
        timeout = max(timeouts) if timeouts else handler.timeout or self.queue.job_timeout
        if not handler.is_async and self._processes is not None:
            return await self._in_process(handler, ctxs, jobs, timeout)
        if not handler.is_async:
            return await self.threads.run(handler, arg, jobs, timeout)
        coro = handler.fn(arg)
        if timeout is None:
            return await coro
        try:
            async with asyncio.timeout(timeout):
                return await coro
        except TimeoutError:
            self._timed_out(handler, jobs, timeout)
            raise TimeoutError(f"job exceeded its timeout of {timeout:g} s") from None

    async def _in_process(
        self,
        handler: Handler,
        ctxs: list[JobContext],
        jobs: list[ClaimedJob],
        timeout: float | None,
    ) -> Any:
        """Run a sync handler in a child process, killed at the timeout; a cancel kills it
        too, before the job is handed back."""
        assert self._processes is not None
        batch = bool(handler.batch_size)
        try:
            return await self._processes.run(handler.name, ctxs, batch=batch, timeout=timeout)
        except Killed as exc:
            self._timed_out(handler, jobs, exc.timeout, "; its process was killed")
            message = f"job exceeded its timeout of {exc.timeout:g} s; its process was killed"
            raise TimeoutError(message) from None

    def _timed_out(
        self, handler: Handler, jobs: list[ClaimedJob], timeout: float, detail: str = ""
    ) -> None:
        """At the deadline, in every mode: the log line and the metric."""
        metrics.TIMEOUTS.labels(self.queue.name, handler.name).inc(len(jobs))
        ids = ", ".join(job.id for job in jobs)
        log.warning("job %s exceeded its timeout of %g s%s", ids, timeout, detail)

    def _cancelled(self, job: ClaimedJob) -> str:
        running = self.slots.running.get(job.id)
        if running is not None and running.cancelled:
            return "cancelled"  # final in Redis already: nothing to send
        if running is not None and running.lost:
            return "lost"
        if self.threads.abandoning:  # its thread may still run: another worker must not start it
            return "abandoned"
        self.outbox.release(job)
        return "released"

    def _finished(self, job: ClaimedJob, name: str, outcome: str, seconds: float) -> None:
        self.slots.free_slot(job.id)
        error_type = self._failed_types.pop(job.id, "") if self._failed_types else ""
        self.joblog.finished(
            job.id, job.name, job.attempt, outcome, seconds, error_type, job.payload
        )
        if self._tracing is not None:
            self._tracing.end(job.id, outcome)
        key = (name, outcome)
        series = self._series.get(key)
        if series is None:
            # labels() hashes and locks on every call: look each child up once.
            series = self._series[key] = (
                metrics.JOBS.labels(self.queue.name, name, outcome),
                metrics.DURATION.labels(self.queue.name, name),
            )
        series[0].inc()
        series[1].observe(seconds)
        c = self.counters
        c.by_outcome[outcome] = c.by_outcome.get(outcome, 0) + 1
        if outcome == "completed":
            c.completed += 1
        elif outcome in ("retried", "dead"):
            c.failed += 1
        elif outcome == "lost":
            c.lost += 1
        elif outcome == "abandoned":
            c.abandoned += 1
        elif outcome == "cancelled":
            c.cancelled += 1

    # -- shutdown -----------------------------------------------------------------------

    async def _finish(self) -> None:
        """After the drain: release what still runs, then flush every outcome."""
        # The waker's claim may still be in Redis: take back its slots first, so that what
        # it took (if a release rang the queue before the stop's drain flag was set) is
        # released with the rest instead of being left to its lease.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(IDLE_WAKE + max(self.settings.shutdown_margin, 1.0)):
                while self.slots.reserved:
                    await self.slots.wait(IDLE_WAKE)
        tasks = {r.task for r in self.slots.running.values() if r.task is not None}
        for task in tasks:
            task.cancel()
        if tasks:
            await self.threads.outlive(tasks, self.settings.shutdown_margin / 2)
        hard_deadline = time.monotonic() + max(self.settings.shutdown_margin, 1.0)
        retries = Retries(FLUSH_RETRY)
        outbox = self.outbox
        while outbox:
            try:
                if outbox.releases:
                    releases = outbox.take_releases()
                    try:
                        released = await self._release(releases)
                    except BaseException:
                        outbox.restore_releases(releases)
                        raise
                    self.counters.released += released
                if outbox.has_acks:
                    await self._settle_and_claim(0)
            except (RedisError, *REDIS_DOWN) as exc:
                if time.monotonic() >= hard_deadline:
                    # Redis is gone: the leases will expire and other workers recover the
                    # jobs (at-least-once), so exiting now loses nothing.
                    log.error("could not flush outcomes before exit: %s", type(exc).__name__)
                    return
                await asyncio.sleep(retries.next_delay())

    async def _release(self, releases: list[tuple[str, str]]) -> int:
        """Put `releases` back in line, each job in its own partition."""
        if self._tour is None:
            return await self.engine.release(releases, worker_id=self.id)
        by_index: dict[int, list[tuple[str, str]]] = {}
        for pair in releases:
            by_index.setdefault(self._index_of(pair[1]), []).append(pair)
        done = await asyncio.gather(
            *(self.engines[i].release(p, worker_id=self.id) for i, p in by_index.items())
        )
        return sum(done)


async def run_worker(
    settings: WorkerSettings,
    handlers: HandlerSource | None = None,
    *,
    on_listening: Callable[[int], None] | None = None,
) -> WorkerCounters:
    """Run a worker with signal handling until SIGTERM/SIGINT; what `jobfleet worker` does
    (`on_listening` gets the HTTP port once open: how a supervised child reports it)."""
    worker = Worker(settings, handlers if handlers is not None else default_registry)
    worker.on_listening = on_listening
    worker.install_signals()
    return await worker.run()


__all__ = ["HandlerSource", "Worker", "WorkerCounters", "run_worker"]
