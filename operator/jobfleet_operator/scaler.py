"""One Queue's control loop: keep its children applied, read Redis, size the fleet, report."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from jobfleet.redaction import redact_text as redact
from jobfleet.waits import wait_event

from . import conditions as cond
from . import drain as dr
from . import status as st
from .autoscaler import Decision, Load, Memory, Policy, decide, forget
from .deployment import (
    QueueRef,
    child_name,
    render_configmap,
    render_deployment,
    selector_labels,
)
from .kube import Kube, KubeError, deployment_path, now_rfc3339, queue_path
from .metrics import Metrics
from .spec import QueueSpec, SecretKeyRef

log = logging.getLogger(__name__)

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
DRAINED = -(2**31)  # int32 minimum: drained pods go before any other
DRAINED_COST = str(DRAINED)
# A scale-in the ReplicaSet would carry out on the wrong pods (one not ready yet holds jobs)
# waits for the pods to become ready at most this long, then goes ahead as before.
RANK_HOLD_SECONDS = 30.0
RESYNC_SECONDS = 60.0  # re-apply children this often even without a change (drift repair)
STATUS_MIN_INTERVAL = 5.0  # numbers-only status writes at most this often per Queue
SECRET_TTL = 30.0  # Redis URL/password Secrets are re-read this often (and after a failure)


class StatsReader(Protocol):
    async def read(self) -> Load: ...
    async def workers(self) -> list[dr.Worker]: ...
    async def drain(self, worker_ids: list[str], ttl: float) -> None: ...
    async def undrain(self, worker_ids: list[str]) -> None: ...
    async def set_paused(self, paused: bool) -> None: ...
    async def partitions(self) -> int: ...
    async def aclose(self) -> None: ...


class RedisUnavailable(Exception):
    """Redis could not be read; the message is safe to show (no password)."""


class JobfleetReader:
    """Reads a queue through jobfleet's public Client (never its own Lua)."""

    def __init__(
        self,
        url: str,
        password: str | None,
        sentinel_password: str | None,
        queue: str,
        timeout: float,
    ) -> None:
        from jobfleet import Client, connect, url_password

        # A URL from a Secret may carry its own password: never echo any of them.
        self.secrets = (password, sentinel_password, url_password(url))
        self.timeout = timeout
        # No client-side retries: a failed read holds the fleet and is retried next tick.
        # The passwords are always explicit: jobfleet would otherwise fall back to the
        # operator's own $JOBFLEET_REDIS_PASSWORD / $JOBFLEET_REDIS_SENTINEL_PASSWORD and hand
        # them to whatever Redis a Queue names.
        conn = connect(
            url,
            retries=0,
            socket_timeout=timeout,
            password=password,
            sentinel_password=sentinel_password,
        )
        self.client = Client(url, queue=queue, connection=conn)

    async def read(self) -> Load:
        import redis.exceptions

        try:
            load = Load.from_stats(await asyncio.wait_for(self.client.inspect(), self.timeout))
            # A partitioned queue's inspect sums the partitions, but its `workers` is the most
            # any one partition registered (a worker registers where it claims): the SLA math
            # divides the logical throughput by the logical fleet, so count the exact set.
            if await asyncio.wait_for(self.client.partitions(), self.timeout) > 1:
                found = await asyncio.wait_for(self.client.workers(), self.timeout)
                load = dataclasses.replace(load, workers=len(found))
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise RedisUnavailable(redact(detail, *self.secrets)) from None
        return load

    async def workers(self) -> list[dr.Worker]:
        """Live workers (ids start with the pod's name), their jobs in flight, drained or not."""
        import redis.exceptions

        try:
            found = await asyncio.wait_for(self.client.workers(), self.timeout)
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise RedisUnavailable(redact(detail, *self.secrets)) from None
        return [dr.Worker(w.id, w.in_flight, w.draining) for w in found.values()]

    async def drain(self, worker_ids: list[str], ttl: float) -> None:
        import redis.exceptions

        try:
            await asyncio.wait_for(self.client.drain_workers(worker_ids, ttl=ttl), self.timeout)
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise RedisUnavailable(redact(detail, *self.secrets)) from None

    async def undrain(self, worker_ids: list[str]) -> None:
        import redis.exceptions

        try:
            await asyncio.wait_for(self.client.undrain_workers(worker_ids), self.timeout)
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise RedisUnavailable(redact(detail, *self.secrets)) from None

    async def set_paused(self, paused: bool) -> None:
        import redis.exceptions

        try:
            await (self.client.pause() if paused else self.client.resume())
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise RedisUnavailable(redact(detail, *self.secrets)) from None

    async def partitions(self) -> int:
        """How many partitions the client sees (the queue's descriptor, once workers wrote
        it; 1 before)."""
        import redis.exceptions

        try:
            return await asyncio.wait_for(self.client.partitions(), self.timeout)
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise RedisUnavailable(redact(detail, *self.secrets)) from None

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.aclose()


# (url, password, sentinel_password, queue, timeout) -> reader
ReaderFactory = Callable[[str, str | None, str | None, str, float], StatsReader]


@dataclass
class Connection:
    """The Redis address a Queue resolves to (passwords kept out of reprs and logs)."""

    url: str = field(repr=False)
    password: str | None = field(repr=False)
    sentinel_password: str | None = field(default=None, repr=False)

    def fingerprint(self) -> str:
        raw = f"{self.url}\0{self.password or ''}\0{self.sentinel_password or ''}".encode()
        return hashlib.sha256(raw).hexdigest()

    @property
    def secrets(self) -> tuple[str | None, ...]:
        return (self.password, self.sentinel_password, self.url)


class Scaler:
    """Owns everything the operator does for one Queue; one task per Queue."""

    def __init__(
        self,
        kube: Kube,
        metrics: Metrics,
        body: dict[str, Any],
        spec: QueueSpec,
        *,
        identity: str,
        reader_factory: ReaderFactory = JobfleetReader,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.metrics = metrics
        self.identity = identity
        self.reader_factory = reader_factory
        self.clock = clock
        self.wall = wall  # drain deadlines: kept in the status, so they must survive a restart
        self.memory = Memory()
        # Seed the scaler's memory with the live size on its first tick: after an operator
        # restart (or a policy change) the stabilization window must still hold the fleet.
        self.seed = True
        self.reader: StatsReader | None = None
        self.reader_key = ""
        self._connection: Connection | None = None
        self._connection_at = 0.0
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.status: dict[str, Any] = dict(body.get("status") or {})
        # A drain a previous operator began: resumed (or cancelled) on the first tick.
        self.drain = dr.Drain.from_status(self.status.get("drain"))
        self.drain_message = (
            f"draining {', '.join(self.drain.pods)} (resumed after an operator restart)"
            if self.drain is not None
            else ""
        )
        self.last_status_write = 0.0
        self.last_apply = 0.0
        self.force_apply = False
        self.next_decision = 0.0  # scaling decisions at most once per poll interval
        self.applied_generation: int | None = None  # of the Deployment, after our last write
        self.redis_ok: bool | None = None
        self.breached = False
        self.pending_pause: bool | None = None
        self.rank_hold_since: float | None = None  # clock: a scale-in held for readiness
        # Why the latest spec is not in effect (reason, message, its generation), if it is not.
        self.problem: tuple[str, str, int | None] | None = None
        self.body = body
        self.spec = spec
        self.set(body, spec)

    # -- identity -------------------------------------------------------------------------

    @property
    def ref(self) -> QueueRef:
        meta = self.body["metadata"]
        return QueueRef(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])

    @property
    def generation(self) -> int | None:
        gen = self.body["metadata"].get("generation")
        return int(gen) if gen is not None else None

    @property
    def queue_name(self) -> str:
        return self.spec.queue(self.ref.name)

    def set(self, body: dict[str, Any], spec: QueueSpec) -> None:
        """A new version of the Queue: apply on the next tick, and tick now."""
        if spec.autoscaling != self.spec.autoscaling or spec.sla != self.spec.sla:
            self.memory = forget(self.memory)
            self.seed = True
        self.body, self.spec = body, spec
        self.policy = Policy.from_spec(spec)
        self._connection = None
        self.last_apply = 0.0
        self.next_decision = 0.0
        self.wake.set()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(
                self.run(), name=f"scaler {self.ref.namespace}/{self.ref.name}"
            )

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.reader is not None:
            await self.reader.aclose()
            self.reader = None

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
                # The API server is busy or away: the fleet keeps its size meanwhile.
                log.warning("tick of %s/%s: %s", self.ref.namespace, self.ref.name, exc)
                self._backoff()
            except Exception:
                # A bug must not end the loop: log it and try again next interval.
                log.exception("tick of %s/%s failed", self.ref.namespace, self.ref.name)
                self._backoff()
            self.wake.clear()
            delay = max(0.05, self.next_decision - self.clock())
            await wait_event(self.wake, delay)

    def _backoff(self) -> None:
        interval = self.spec.autoscaling.poll_interval_seconds
        self.next_decision = max(self.next_decision, self.clock() + interval)

    # -- one tick -------------------------------------------------------------------------

    async def tick(self) -> None:
        """Repair drift whenever woken; decide a size at most once per poll interval.

        Deployment events wake the loop at once (drift repair must not wait), but they must
        not add decisions: the scale-up step is a bound per interval.
        """
        async with self.lock:
            deployment = await self.kube.get(
                deployment_path(self.ref.namespace, child_name(self.ref))
            )
            now = self.clock()
            # Gone after we had created it: re-create it, unless its Queue is going too (the
            # garbage collector deletes the children of a deleted Queue).
            if (
                deployment is None
                and self.applied_generation is not None
                and not await self.queue_alive()
            ):
                return
            if (
                deployment is None
                or self.force_apply
                or now - self.last_apply >= RESYNC_SECONDS
                or self.drifted(deployment)
            ):
                deployment = await self.apply_children(deployment)
            if now < self.next_decision:
                return
            self.next_decision = now + self.spec.autoscaling.poll_interval_seconds
            current = int((deployment.get("spec") or {}).get("replicas") or 0)
            if self.seed:
                # A drain in progress was the last decision: seeding with its target resumes
                # it instead of holding the fleet for a whole window and cancelling it.
                seed = self.drain.to_replicas if self.drain is not None else current
                self.memory = Memory(
                    recommendations=((now, self.policy.clamp(seed)),),
                    last_busy=self.memory.last_busy,
                )
                self.seed = False
            load, redis_error = await self.read_load()
            decision = decide(self.policy, current, load, self.memory, now)
            self.memory = decision.memory
            replicas = decision.replicas
            if redis_error is not None:
                replicas = current if self.drain is not None else replicas
            elif self.drain is not None or replicas < current:
                replicas = await self.scale_in(current, replicas)
            else:
                self.rank_hold_since = None
            scaled = False
            if replicas != current:
                await self.scale(current, decision, replicas)
                scaled = True
            await self.report(deployment, current, load, decision, redis_error, scaled, replicas)

    async def queue_alive(self) -> bool:
        queue = await self.kube.get(queue_path(self.ref.namespace, self.ref.name))
        if queue is None or queue["metadata"].get("uid") != self.ref.uid:
            return False
        return not queue["metadata"].get("deletionTimestamp")

    def drifted(self, deployment: dict[str, Any]) -> bool:
        """Someone else changed the Deployment since our last write (generation moved)."""
        gen = deployment.get("metadata", {}).get("generation")
        return self.applied_generation is not None and gen != self.applied_generation

    def mark_drift(self, *, reapply: bool = False) -> None:
        """Called on events of our children: re-check now instead of at the next interval."""
        if reapply:
            self.force_apply = True
        self.wake.set()

    async def apply_children(self, live: dict[str, Any] | None) -> dict[str, Any]:
        """Apply ConfigMap then Deployment; replicas stay what they are (the scaler owns them)."""
        if live is not None:
            replicas = int((live.get("spec") or {}).get("replicas") or 0)
        else:
            replicas = self.policy.min_replicas
        await self.kube.apply(render_configmap(self.ref, self.spec))
        applied = await self.kube.apply(render_deployment(self.ref, self.spec, replicas))
        self.applied_generation = applied.get("metadata", {}).get("generation")
        self.last_apply = self.clock()
        self.force_apply = False
        if live is None:
            log.info("created Deployment %s/%s", self.ref.namespace, child_name(self.ref))
        return applied

    async def scale(self, current: int, decision: Decision, replicas: int) -> None:
        ref = self.ref
        result = await self.kube.scale(ref.namespace, child_name(ref), replicas)
        # The scale subresource bumps the Deployment's generation: that one was us.
        dep = await self.kube.get(deployment_path(ref.namespace, child_name(ref)))
        if dep is not None:
            self.applied_generation = dep.get("metadata", {}).get("generation")
        del result
        direction = "up" if replicas > current else "down"
        self.metrics.scale_events.labels(ref.namespace, ref.name, direction).inc()
        self.status["lastScaleTime"] = now_rfc3339()
        self.status["lastScaleReason"] = decision.reason
        log.info(
            "scaled %s/%s %d -> %d: %s",
            ref.namespace,
            ref.name,
            current,
            replicas,
            decision.reason,
        )
        await self.kube.event(
            self.body,
            type="Normal",
            reason="ScaledUp" if direction == "up" else "ScaledDown",
            note=f"{current} -> {replicas}: {decision.reason}",
            action="Scale",
            instance=self.identity,
        )

    async def scale_in(self, current: int, desired: int) -> int:
        """Drain before delete (`drain.step` decides; this does the reads and writes).

        Returns the replicas to set now: `current` while the chosen pods still finish their
        jobs. Any failure holds the fleet this tick; the drain state stays as it was."""
        timeout = self.spec.autoscaling.scale_in.drain_timeout_seconds
        ref = self.ref
        if self.reader is None:
            return current
        try:
            workers = await self.reader.workers()
            raw = await self.kube.list_pods(ref.namespace, selector_labels(ref))
            live = [p for p in raw if not p["metadata"].get("deletionTimestamp")]
            pods = dr.by_pod([p["metadata"]["name"] for p in live], workers)
            st = dr.step(
                self.drain,
                current=current,
                desired=desired,
                pods=pods,
                now=self.wall(),
                timeout=timeout,
            )
            # Renewed every tick, with a TTL of a few ticks: a drain whose operator went
            # away lapses on its own and the workers claim again.
            ttl = max(60.0, 10 * self.spec.autoscaling.poll_interval_seconds)
            if st.drain:
                await self.reader.drain(list(st.drain), ttl)
            if st.undrain:
                await self.reader.undrain(list(st.undrain))
            if st.replicas is not None and st.replicas < current:
                costs = await self.rank_pods(live, workers, frozenset(st.gone))
                if self.hold_for_ranking(live, costs, current - st.replicas):
                    return current  # the drain state stays: the same step comes next tick
        except (RedisUnavailable, KubeError) as exc:
            log.warning("scale-in of %s/%s held: %s", ref.namespace, ref.name, exc)
            return current
        self.drain, self.drain_message = st.state, st.message
        if st.outcome in ("drained", "timed_out", "cancelled"):
            result = {"drained": "Drained", "timed_out": "TimedOut", "cancelled": "Cancelled"}
            self.status["lastDrain"] = {
                "result": result[st.outcome],
                "message": st.message,
                "time": now_rfc3339(),
            }
        if st.outcome != "waiting" and st.outcome != "none":
            log.info("%s/%s: %s", ref.namespace, ref.name, st.message)
            reason = {
                "started": "Draining",
                "drained": "Drained",
                "timed_out": "DrainTimedOut",
                "cancelled": "DrainCancelled",
            }[st.outcome]
            await self.kube.event(
                self.body,
                type="Warning" if st.outcome == "timed_out" else "Normal",
                reason=reason,
                note=st.message,
                action="Drain",
                instance=self.identity,
            )
        return st.replicas if st.replicas is not None else current

    async def rank_pods(
        self, pods: list[dict[str, Any]], workers: list[dr.Worker], gone: frozenset[str]
    ) -> dict[str, int]:
        """Before lowering replicas, tell the ReplicaSet controller which pods to remove:
        the drained ones (lowest `pod-deletion-cost`), then by jobs in flight, so that with
        drains off or timed out idle workers still go first. Best effort: a failure here
        only makes the choice of pods arbitrary (those removed still drain on SIGTERM).
        Returns each pod's cost."""
        costs: dict[str, int] = {}
        for pod in pods:
            name = pod["metadata"]["name"]
            in_flight = sum(w.in_flight for w in workers if w.pod == name)
            costs[name] = DRAINED if name in gone else in_flight
            cost = str(costs[name])
            annotations = pod["metadata"].get("annotations") or {}
            if annotations.get(DELETION_COST) != cost:
                try:
                    await self.kube.annotate_pod(self.ref.namespace, name, DELETION_COST, cost)
                except KubeError as exc:
                    if exc.status != 404:  # a pod that went meanwhile needs no cost
                        log.warning("could not rank pod %s: %s", name, exc)
        return costs

    def hold_for_ranking(self, pods: list[dict[str, Any]], costs: dict[str, int], k: int) -> bool:
        """Whether to keep replicas this tick: the ReplicaSet controller ranks a pod that is
        not ready (yet) before any deletion cost, so lowering replicas now would remove a
        pod holding jobs in place of an idle (or drained) one. Just-started pods become
        ready within seconds; one that stays not ready for RANK_HOLD_SECONDS no longer holds
        the fleet (its jobs still get their grace period). Idle pods removed out of turn
        hold nothing up: nothing is lost with them."""
        ref = self.ref
        ranked = [dr.Candidate.of(p, costs[p["metadata"]["name"]]) for p in pods]
        # Only a pod with jobs in flight is worth the wait (an idle one costs nothing to lose).
        wrong = [name for name in dr.overruled(ranked, k) if costs[name] > 0]
        now = self.clock()
        if not wrong:
            self.rank_hold_since = None
            return False
        if self.rank_hold_since is None:
            self.rank_hold_since = now
            log.info(
                "%s/%s: scale-in waits for %s to be ready: the ReplicaSet would remove it "
                "before pods with fewer jobs in flight",
                ref.namespace,
                ref.name,
                ", ".join(wrong),
            )
        if now - self.rank_hold_since < RANK_HOLD_SECONDS:
            return True
        log.warning(
            "%s/%s: %s still not ready after %g s: scaling in anyway",
            ref.namespace,
            ref.name,
            ", ".join(wrong),
            RANK_HOLD_SECONDS,
        )
        self.rank_hold_since = None
        return False

    # -- Redis ----------------------------------------------------------------------------

    async def connection(self) -> Connection:
        redis = self.spec.redis
        if redis.url_secret_ref is not None:
            url = (await self.secret(redis.url_secret_ref) or "").strip()
        else:
            from .deployment import settings_redis_url

            url = settings_redis_url(self.spec) or ""
        password = await self.secret(redis.password_secret_ref)
        sentinel = redis.sentinel
        sentinel_password = await self.secret(sentinel.password_secret_ref if sentinel else None)
        return Connection(url=url, password=password, sentinel_password=sentinel_password)

    async def secret(self, ref: SecretKeyRef | None) -> str | None:
        if ref is None:
            return None
        value = await self.kube.secret_value(self.ref.namespace, ref.name, ref.key)
        if value is None:
            raise RedisUnavailable(f"Secret {ref.name} has no key {ref.key}")
        return value

    async def cached_connection(self) -> Connection:
        """Secrets are re-read every SECRET_TTL seconds, not on every tick (API load)."""
        now = self.clock()
        if self._connection is None or now - self._connection_at >= SECRET_TTL:
            self._connection = await self.connection()
            self._connection_at = now
        return self._connection

    async def read_load(self) -> tuple[Load | None, str | None]:
        """The queue's load, or None and a safe message when it cannot be read."""
        try:
            conn = await self.cached_connection()
            key = conn.fingerprint() + self.queue_name
            if self.reader is None or key != self.reader_key:
                if self.reader is not None:
                    await self.reader.aclose()
                timeout = max(1.0, min(5.0, self.spec.autoscaling.poll_interval_seconds * 2))
                try:
                    self.reader = self.reader_factory(
                        conn.url, conn.password, conn.sentinel_password, self.queue_name, timeout
                    )
                except ValueError as exc:  # jobfleet.ConfigError: a malformed URL
                    raise RedisUnavailable(redact(str(exc), *conn.secrets)) from None
                self.reader_key = key
            try:
                load = await self.reader.read()
            except RedisUnavailable:
                self._connection = None  # maybe a rotated password: re-read the Secret
                raise
            if self.pending_pause is not None:
                # A pause reaches the partitions the client knows of. Before the workers of a
                # partitioned queue record K, that is the plain queue alone: so the pause is
                # applied again each tick until the client sees the Queue's K (then once).
                seen = await self.reader.partitions()
                await self.reader.set_paused(self.pending_pause)
                if seen == self.spec.partitions:
                    self.pending_pause = None
            return load, None
        except RedisUnavailable as exc:
            return None, str(exc)
        except KubeError as exc:
            return None, f"cannot read the Redis Secret: {exc.reason}"

    # -- status ---------------------------------------------------------------------------

    async def report(
        self,
        deployment: dict[str, Any],
        current: int,
        load: Load | None,
        decision: Decision,
        redis_error: str | None,
        scaled: bool,
        applied: int,
    ) -> None:
        """Render the status (`status.render`, pure), then do its writes: metrics, the Events
        it asks for, and the status itself."""
        ref = self.ref
        replicas = applied if scaled else current
        report = st.render(
            spec=self.spec,
            queue_name=self.queue_name,
            deployment_name=child_name(ref),
            generation=self.generation,
            problem=self.problem,
            deployment_status=deployment.get("status") or {},
            replicas=replicas,
            load=load,
            decision=decision,
            redis_error=redis_error,
            drain=self.drain,
            drain_message=self.drain_message,
            seen=st.Seen(status=self.status, redis_ok=self.redis_ok, breached=self.breached),
            now=now_rfc3339(),
        )
        m = self.metrics
        m.track(ref.namespace, ref.name)
        m.desired.labels(ref.namespace, ref.name).set(decision.replicas)
        m.replicas.labels(ref.namespace, ref.name).set(replicas)
        m.redis_up.labels(ref.namespace, ref.name).set(0 if load is None else 1)
        for event in report.events:
            await self.kube.event(
                self.body,
                type=event.type,
                reason=event.reason,
                note=event.note,
                action=event.action,
                instance=self.identity,
            )
        self.redis_ok = report.redis_ok
        if report.new_breach:
            m.sla_breaches.labels(ref.namespace, ref.name).inc()
        self.breached = report.breached
        if load is not None:
            m.backlog.labels(ref.namespace, ref.name).set(load.waiting + load.in_flight)
            m.waiting.labels(ref.namespace, ref.name).set(load.waiting)
            m.in_flight.labels(ref.namespace, ref.name).set(load.in_flight)
            m.oldest_wait.labels(ref.namespace, ref.name).set(load.oldest_wait)
            m.throughput.labels(ref.namespace, ref.name).set(load.throughput)
        await self.write_status(report.status, list(self.status.get("conditions") or []))

    async def write_status(
        self, status: dict[str, Any], old_conditions: list[dict[str, Any]]
    ) -> None:
        """Write when something meaningful changed, else at most every few seconds."""
        structural = (
            "observedGeneration",
            "replicas",
            "readyReplicas",
            "desiredReplicas",
            "lastScaleTime",
            "drain",
            "lastDrain",
        )
        important = not cond.same(old_conditions, status["conditions"]) or any(
            self.status.get(k) != status.get(k) for k in structural
        )
        changed = status != self.status
        now = self.clock()
        if not changed or (not important and now - self.last_status_write < STATUS_MIN_INTERVAL):
            return
        try:
            await self.kube.patch_queue_status(self.ref.namespace, self.ref.name, status)
        except KubeError as exc:
            if exc.status == 404:
                return  # the Queue is being deleted
            raise
        self.status = status
        self.last_status_write = now
