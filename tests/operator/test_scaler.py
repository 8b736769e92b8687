"""One Queue's control loop against in-memory stand-ins for the API and Redis: the wiring of
pure decisions to their writes. e2e (e2e/test_operator.py, e2e/test_scale_in_drain.py) runs the same
paths against a real API server, real workers and a real Redis."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jobfleet_operator.autoscaler import Load
from jobfleet_operator.drain import Worker
from jobfleet_operator.metrics import Metrics
from jobfleet_operator.scaler import (
    DELETION_COST,
    DRAINED_COST,
    RANK_HOLD_SECONDS,
    RedisUnavailable,
    Scaler,
)
from jobfleet_operator.spec import QueueSpec

PASSWORD = "hunter2-s3cret"
QUEUE_PATH = "/apis/jobfleet.dev/v1alpha1/namespaces/shop/queues/emails"
DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/shop/deployments/emails-jobfleet"


class FakeKube:
    """Stores what the operator writes; bumps generations like the API server does."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.status_writes: list[dict[str, Any]] = []
        self.events: list[dict[str, str]] = []
        self.scales: list[int] = []
        self.secrets = {("shop", "redis", "password"): PASSWORD}
        self.secret_reads = 0
        self.pods: dict[str, dict[str, str]] = {}  # pod name -> annotations
        self.not_ready: set[str] = set()  # pods listed as Running but not Ready

    async def get(self, path: str) -> dict[str, Any] | None:
        obj = self.objects.get(path)
        return json.loads(json.dumps(obj)) if obj else None

    async def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        kind, meta = body["kind"], body["metadata"]
        plural = "deployments" if kind == "Deployment" else "configmaps"
        prefix = "/apis/apps/v1" if kind == "Deployment" else "/api/v1"
        path = f"{prefix}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
        old = self.objects.get(path)
        gen = (old or {}).get("metadata", {}).get("generation", 0)
        if old is None or old.get("spec") != body.get("spec"):
            gen += 1
        self.objects[path] = {**body, "metadata": {**meta, "generation": gen}, "status": {}}
        return json.loads(json.dumps(self.objects[path]))

    async def scale(self, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        dep = self.objects[f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
        dep["spec"]["replicas"] = replicas
        dep["metadata"]["generation"] += 1
        self.scales.append(replicas)
        return {}

    async def patch_queue_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.status_writes.append(json.loads(json.dumps(status)))
        return {}

    async def list_pods(self, namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {
                "metadata": {"name": name, "annotations": dict(ann)},
                "spec": {"nodeName": "node-0"},
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": str(name not in self.not_ready)}],
                },
            }
            for name, ann in self.pods.items()
        ]

    async def annotate_pod(self, namespace: str, name: str, key: str, value: str) -> None:
        self.pods[name][key] = value

    async def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        self.secret_reads += 1
        return self.secrets.get((namespace, name, key))

    async def event(
        self,
        regarding: dict[str, Any],
        *,
        type: str,
        reason: str,
        note: str,
        action: str,
        instance: str,
    ) -> None:
        self.events.append({"type": type, "reason": reason, "note": note})

    def deployment(self) -> dict[str, Any]:
        return self.objects["/apis/apps/v1/namespaces/shop/deployments/emails-jobfleet"]


class FakeReader:
    def __init__(self) -> None:
        self.load: Load | Exception = Load(waiting=0, in_flight=0)
        self.opened: list[tuple[str, str | None, str | None, str]] = []
        self.paused: list[bool] = []
        self.seen_partitions = 1
        self.in_flight: dict[str, int] = {}
        self.drained: set[str] = set()
        self.drain_calls: list[tuple[str, ...]] = []
        self.undrain_calls: list[tuple[str, ...]] = []

    def factory(
        self,
        url: str,
        password: str | None,
        sentinel_password: str | None,
        queue: str,
        timeout: float,
    ) -> FakeReader:
        self.opened.append((url, password, sentinel_password, queue))
        return self

    async def read(self) -> Load:
        if isinstance(self.load, Exception):
            raise self.load
        return self.load

    async def workers(self) -> list[Worker]:
        return [Worker(w, n, w in self.drained) for w, n in self.in_flight.items()]

    async def drain(self, worker_ids: list[str], ttl: float) -> None:
        self.drain_calls.append(tuple(worker_ids))
        self.drained.update(worker_ids)

    async def undrain(self, worker_ids: list[str]) -> None:
        self.undrain_calls.append(tuple(worker_ids))
        self.drained.difference_update(worker_ids)

    async def set_paused(self, paused: bool) -> None:
        self.paused.append(paused)

    async def partitions(self) -> int:
        return self.seen_partitions

    async def aclose(self) -> None:
        pass


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


SPEC: dict[str, Any] = {
    "redis": {
        "url": "redis://redis.shop:6379/0",
        "passwordSecretRef": {"name": "redis", "key": "password"},
    },
    "worker": {"image": "jobs:1", "handlers": ["acme.jobs"]},
    "concurrency": 10,
    "autoscaling": {
        "minReplicas": 1,
        "maxReplicas": 6,
        "scaleDown": {"stabilizationWindowSeconds": 30},
    },
    "sla": {"targetWaitSeconds": 5},
}


def body(spec: dict[str, Any] = SPEC, generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "jobfleet.dev/v1alpha1",
        "kind": "Queue",
        "metadata": {"name": "emails", "namespace": "shop", "uid": "u-1", "generation": generation},
        "spec": spec,
    }


WALL = Clock(1_800_000_000.0)


@pytest.fixture
def env() -> tuple[Scaler, FakeKube, FakeReader, Clock]:
    kube, reader, clock = FakeKube(), FakeReader(), Clock()
    scaler = Scaler(
        kube,  # type: ignore[arg-type]
        Metrics(),
        body(),
        QueueSpec.model_validate(SPEC),
        identity="op-0",
        reader_factory=reader.factory,
        clock=clock,
        wall=lambda: WALL.t + clock.t,
    )
    return scaler, kube, reader, clock


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


async def test_first_tick_creates_children_and_reports(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, reader, _ = env
    await scaler.tick()
    assert kube.deployment()["spec"]["replicas"] == 1
    assert reader.opened == [("redis://redis.shop:6379/0", PASSWORD, None, "emails")]
    status = kube.status_writes[-1]
    assert status["observedGeneration"] == 1
    assert status["desiredReplicas"] == 1
    assert status["deployment"] == "emails-jobfleet"
    c = conditions(status)
    assert c["RedisReachable"] == ("True", "Connected")
    assert c["SLAMet"] == ("True", "WithinTarget")
    assert c["Ready"] == ("False", "WorkersNotReady")  # no pod is ready in the fake


async def test_backlog_scales_with_event_and_status(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, reader, clock = env
    await scaler.tick()
    reader.load = Load(waiting=45, in_flight=10)
    clock.t += 2
    await scaler.tick()
    assert kube.scales == [5]  # +4 step from 1 (55 / 10 wants 6)
    assert kube.events[-1]["reason"] == "ScaledUp"
    assert kube.events[-1]["note"].startswith("1 -> 5: backlog 55")
    status = kube.status_writes[-1]
    assert (status["replicas"], status["desiredReplicas"], status["backlog"]) == (5, 5, 55)
    assert status["lastScaleReason"].startswith("backlog 55")
    assert conditions(status)["Scaling"] == ("True", "ScalingUp")


async def test_decisions_at_most_once_per_interval(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, reader, clock = env
    await scaler.tick()
    reader.load = Load(waiting=1000, in_flight=0)
    clock.t += 2
    await scaler.tick()
    await scaler.tick()  # woken again by a Deployment event, same instant
    assert kube.scales == [5]
    clock.t += 2
    await scaler.tick()
    assert kube.scales == [5, 6]


async def test_redis_down_holds_and_warns_once(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, reader, clock = env
    await scaler.tick()
    reader.load = Load(waiting=45, in_flight=10)
    clock.t += 2
    await scaler.tick()
    reader.load = RedisUnavailable("Error 111 connecting to redis.shop:6379. Connection refused.")
    for _ in range(5):
        clock.t += 100  # far past the window and any cooldown
        await scaler.tick()
    assert kube.scales == [5]
    status = kube.status_writes[-1]
    assert status["desiredReplicas"] == 5
    assert conditions(status)["RedisReachable"] == ("False", "RedisUnreachable")
    assert conditions(status)["Ready"] == ("False", "RedisUnreachable")
    warnings = [e for e in kube.events if e["reason"] == "RedisUnreachable"]
    assert len(warnings) == 1
    assert "holding 5 replicas" in warnings[0]["note"]


async def test_password_never_in_status_or_events(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, reader, _ = env

    async def read() -> Load:
        from jobfleet_operator.scaler import redact

        raise RedisUnavailable(redact(f"auth failed: {PASSWORD}", PASSWORD))

    reader.read = read  # type: ignore[method-assign]
    await scaler.tick()
    written = json.dumps([kube.status_writes, kube.events, kube.objects])
    assert PASSWORD not in written
    assert "auth failed: ***" in written


async def test_drift_is_repaired(env: tuple[Scaler, FakeKube, FakeReader, Clock]) -> None:
    scaler, kube, _, clock = env
    await scaler.tick()
    dep = kube.deployment()
    dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 99  # kubectl edit
    dep["metadata"]["generation"] += 1
    clock.t += 2
    await scaler.tick()
    assert kube.deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30


async def test_deleted_deployment_is_recreated_with_min_replicas(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, _, clock = env
    kube.objects[QUEUE_PATH] = body()
    await scaler.tick()
    kube.objects.pop(DEPLOYMENT_PATH)
    clock.t += 2
    await scaler.tick()
    assert kube.deployment()["spec"]["replicas"] == 1


async def test_children_of_a_deleted_queue_are_not_recreated(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, _, clock = env
    await scaler.tick()
    kube.objects.pop(DEPLOYMENT_PATH)  # the Queue is gone; the GC removed its Deployment
    clock.t += 2
    await scaler.tick()
    assert DEPLOYMENT_PATH not in kube.objects


async def test_restart_keeps_the_window(env: tuple[Scaler, FakeKube, FakeReader, Clock]) -> None:
    """A fresh scaler (operator restart) finds 6 replicas and no work: it waits the window."""
    _, kube, reader, clock = env
    scaler = Scaler(
        kube,
        Metrics(),
        body(),
        QueueSpec.model_validate(SPEC),
        identity="op-1",  # type: ignore[arg-type]
        reader_factory=reader.factory,
        clock=clock,
    )
    await scaler.tick()
    await kube.scale("shop", "emails-jobfleet", 6)
    fresh = Scaler(
        kube,
        Metrics(),
        body(),
        QueueSpec.model_validate(SPEC),
        identity="op-2",  # type: ignore[arg-type]
        reader_factory=reader.factory,
        clock=clock,
    )
    clock.t += 2
    await fresh.tick()
    assert kube.deployment()["spec"]["replicas"] == 6
    clock.t += 31
    await fresh.tick()
    assert kube.deployment()["spec"]["replicas"] == 1


async def test_pause_is_synced_once(env: tuple[Scaler, FakeKube, FakeReader, Clock]) -> None:
    scaler, _, reader, _ = env
    scaler.pending_pause = True
    await scaler.tick()
    await scaler.tick()
    assert reader.paused == [True]


async def test_pause_of_a_partitioned_queue_waits_for_its_partitions() -> None:
    """Before the workers record K, a client pauses only the plain queue: the operator keeps
    the pause pending (applied each tick) until its client sees the Queue's K partitions."""
    kube, reader, clock = FakeKube(), FakeReader(), Clock()
    scaler = Scaler(
        kube,  # type: ignore[arg-type]
        Metrics(),
        body({**SPEC, "partitions": 3}),
        QueueSpec.model_validate({**SPEC, "partitions": 3}),
        identity="op-0",
        reader_factory=reader.factory,
        clock=clock,
    )
    scaler.pending_pause = True
    await scaler.tick()
    clock.t += 2
    await scaler.tick()
    assert reader.paused == [True, True]  # the client still sees one partition
    reader.seen_partitions = 3  # the workers wrote the descriptor
    for _ in range(3):
        clock.t += 2
        await scaler.tick()
    assert reader.paused == [True, True, True]  # applied over all partitions, then done


async def test_status_not_rewritten_when_nothing_changed(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, _, clock = env
    await scaler.tick()
    writes = len(kube.status_writes)
    for _ in range(5):
        clock.t += 2
        await scaler.tick()
    assert len(kube.status_writes) == writes


async def test_secret_read_once_per_ttl_and_after_a_failure(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, reader, clock = env
    for _ in range(5):
        await scaler.tick()
        clock.t += 2
    assert kube.secret_reads == 1
    reader.load = RedisUnavailable("WRONGPASS")  # e.g. the password was rotated
    await scaler.tick()
    clock.t += 2
    reader.load = Load(waiting=0, in_flight=0)
    await scaler.tick()
    assert kube.secret_reads == 2


async def test_a_refused_spec_stays_visible_while_the_old_fleet_runs(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, _, clock = env
    await scaler.tick()
    scaler.problem = ("InvalidSpec", "spec.schedules.0.cron: not a valid schedule", 2)
    clock.t += 2
    await scaler.tick()
    status = kube.status_writes[-1]
    assert conditions(status)["Ready"] == ("False", "InvalidSpec")
    assert status["observedGeneration"] == 2


async def test_configmap_edit_is_repaired_on_its_event(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, _, clock = env
    await scaler.tick()
    path = "/api/v1/namespaces/shop/configmaps/emails-jobfleet"
    kube.objects[path]["data"] = {"settings.json": "{}"}  # kubectl edit
    scaler.mark_drift(reapply=True)
    clock.t += 0.1  # woken at once, before the next decision is due
    await scaler.tick()
    assert json.loads(kube.objects[path]["data"]["settings.json"])["queue"]["name"] == "emails"


async def grown_to_five(scaler: Scaler, kube: FakeKube, reader: FakeReader, clock: Clock) -> None:
    await scaler.tick()
    reader.load = Load(waiting=45, in_flight=10)
    clock.t += 2
    await scaler.tick()
    assert kube.scales == [5]
    kube.pods = {f"emails-jobfleet-{i}": {} for i in "abcde"}
    reader.in_flight = {
        "emails-jobfleet-a:7:x1": 3,
        "emails-jobfleet-b:7:x2": 0,
        "emails-jobfleet-c:7:x3": 1,
        "emails-jobfleet-d:7:x4": 0,
        "emails-jobfleet-e:7:x5": 2,
    }
    reader.load = Load(waiting=0, in_flight=6)  # needs 1 at 10 per replica
    clock.t += 31  # past the stabilization window


async def test_scale_in_drains_the_least_busy_pods_then_removes_exactly_them(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    """Drain before delete: the 4 pods with the fewest jobs stop claiming, replicas stay
    until they are idle, then their deletion cost is the lowest and replicas drop."""
    scaler, kube, reader, clock = env
    await grown_to_five(scaler, kube, reader, clock)
    await scaler.tick()
    assert kube.scales == [5]  # nothing removed yet
    chosen = ["emails-jobfleet-b", "emails-jobfleet-c", "emails-jobfleet-d", "emails-jobfleet-e"]
    assert reader.drained == {f"{p}:7:x{i}" for p, i in zip(chosen, (2, 3, 4, 5), strict=True)}
    status = kube.status_writes[-1]
    assert status["drain"]["pods"] == chosen
    assert (status["drain"]["fromReplicas"], status["drain"]["toReplicas"]) == (5, 1)
    assert status["drainingPods"] == 4
    assert conditions(status)["Scaling"] == ("True", "Draining")
    assert kube.events[-1]["reason"] == "Draining"
    assert "3 jobs in flight" in kube.events[-1]["note"]

    clock.t += 2
    await scaler.tick()  # c and e still busy
    assert kube.scales == [5]
    reader.in_flight = {
        **reader.in_flight,
        "emails-jobfleet-c:7:x3": 0,
        "emails-jobfleet-e:7:x5": 0,
    }
    clock.t += 2
    await scaler.tick()
    assert kube.scales == [5, 1]
    cost = {name: ann.get(DELETION_COST) for name, ann in kube.pods.items()}
    assert cost == {"emails-jobfleet-a": "3", **{p: DRAINED_COST for p in chosen}}
    status = kube.status_writes[-1]
    assert status["drain"] is None and status["drainingPods"] == 0  # None clears the field
    assert status["lastDrain"]["result"] == "Drained"
    assert [e["reason"] for e in kube.events[-2:]] == ["Drained", "ScaledDown"]
    assert reader.undrain_calls == []  # the drained pods stay drained until they are gone


async def test_a_drain_past_its_timeout_scales_in_anyway_and_warns(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, reader, clock = env
    await grown_to_five(scaler, kube, reader, clock)
    await scaler.tick()
    clock.t += 599
    await scaler.tick()
    assert kube.scales == [5]
    clock.t += 2
    await scaler.tick()
    assert kube.scales == [5, 1]
    warning = next(e for e in kube.events if e["reason"] == "DrainTimedOut")
    assert warning["type"] == "Warning"
    assert "3 jobs in flight" in warning["note"]
    assert kube.status_writes[-1]["lastDrain"]["result"] == "TimedOut"


async def test_a_scale_up_during_a_drain_undrains_its_workers(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, reader, clock = env
    await grown_to_five(scaler, kube, reader, clock)
    await scaler.tick()
    assert len(reader.drained) == 4
    reader.load = Load(waiting=100, in_flight=6)
    clock.t += 2
    await scaler.tick()
    assert reader.drained == set()
    assert kube.scales == [5, 6]
    assert kube.status_writes[-1]["lastDrain"]["result"] == "Cancelled"
    assert "DrainCancelled" in [e["reason"] for e in kube.events]


async def test_a_restarted_operator_resumes_the_drain_from_the_status(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, reader, clock = env
    await grown_to_five(scaler, kube, reader, clock)
    await scaler.tick()
    status = kube.status_writes[-1]
    fresh = Scaler(
        kube,  # type: ignore[arg-type]
        Metrics(),
        {**body(), "status": status},
        QueueSpec.model_validate(SPEC),
        identity="op-1",
        reader_factory=reader.factory,
        clock=Clock(5.0),  # a new process: another monotonic origin
        wall=lambda: WALL.t + clock.t,
    )
    await fresh.tick()
    assert kube.scales == [5]  # the window is seeded with the drain's target: no cancel
    assert reader.undrain_calls == []
    reader.in_flight = dict.fromkeys(reader.in_flight, 0)
    fresh.next_decision = 0.0
    await fresh.tick()
    assert kube.scales == [5, 1]


async def test_with_drains_off_idle_pods_still_go_first(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    """drainTimeoutSeconds 0: today's path, replicas drop at once and the deletion cost is
    each pod's jobs in flight."""
    scaler, kube, reader, clock = env
    spec = {**SPEC, "autoscaling": {**SPEC["autoscaling"], "scaleIn": {"drainTimeoutSeconds": 0}}}
    scaler.set(body(spec), QueueSpec.model_validate(spec))
    await grown_to_five(scaler, kube, reader, clock)
    await scaler.tick()
    assert kube.scales[-1] < 5
    cost = {name: ann.get(DELETION_COST) for name, ann in kube.pods.items()}
    assert cost == {
        "emails-jobfleet-a": "3",
        "emails-jobfleet-b": "0",
        "emails-jobfleet-c": "1",
        "emails-jobfleet-d": "0",
        "emails-jobfleet-e": "2",
    }
    assert reader.drain_calls == []


async def test_a_scale_in_waits_while_a_busy_pod_is_not_ready_yet(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    """The ReplicaSet controller removes a pod that is not ready before it looks at any
    deletion cost, and a worker claims before its readiness probe has passed: lowering
    replicas now would remove the busiest pod (`a`) first. The scale-in waits for it."""
    scaler, kube, reader, clock = env
    spec = {**SPEC, "autoscaling": {**SPEC["autoscaling"], "scaleIn": {"drainTimeoutSeconds": 0}}}
    scaler.set(body(spec), QueueSpec.model_validate(spec))
    await grown_to_five(scaler, kube, reader, clock)
    kube.not_ready = {"emails-jobfleet-a", "emails-jobfleet-b"}  # b is idle: it may go
    await scaler.tick()
    assert kube.scales == [5]
    assert kube.pods["emails-jobfleet-a"][DELETION_COST] == "3"  # the costs are written
    kube.not_ready = {"emails-jobfleet-b"}
    clock.t += 2
    await scaler.tick()
    assert kube.scales == [5, 1]


async def test_a_scale_in_waits_for_readiness_only_so_long(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, reader, clock = env
    spec = {**SPEC, "autoscaling": {**SPEC["autoscaling"], "scaleIn": {"drainTimeoutSeconds": 0}}}
    scaler.set(body(spec), QueueSpec.model_validate(spec))
    await grown_to_five(scaler, kube, reader, clock)
    kube.not_ready = {"emails-jobfleet-a"}  # and it stays so
    await scaler.tick()
    clock.t += RANK_HOLD_SECONDS - 1
    await scaler.tick()
    assert kube.scales == [5]
    clock.t += 2
    await scaler.tick()
    assert kube.scales == [5, 1]


async def test_a_drained_scale_in_waits_while_a_kept_busy_pod_is_not_ready(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    """Drained pods have the lowest cost, but a kept pod that is not ready would still go
    before them: the drain's end waits for it, and then removes exactly the drained ones."""
    scaler, kube, reader, clock = env
    await grown_to_five(scaler, kube, reader, clock)
    await scaler.tick()  # b, c, d, e drain
    reader.in_flight = dict.fromkeys(reader.in_flight, 0) | {"emails-jobfleet-a:7:x1": 3}
    kube.not_ready = {"emails-jobfleet-a"}
    clock.t += 2
    await scaler.tick()
    assert kube.scales == [5]
    assert kube.status_writes[-1]["drain"]["pods"] == [
        "emails-jobfleet-b",
        "emails-jobfleet-c",
        "emails-jobfleet-d",
        "emails-jobfleet-e",
    ]
    kube.not_ready = set()
    clock.t += 2
    await scaler.tick()
    assert kube.scales == [5, 1]
    assert kube.status_writes[-1]["lastDrain"]["result"] == "Drained"


async def test_scale_up_does_not_touch_pods(
    env: tuple[Scaler, FakeKube, FakeReader, Clock],
) -> None:
    scaler, kube, reader, clock = env
    await scaler.tick()
    kube.pods = {"emails-jobfleet-a": {}}
    reader.load = Load(waiting=45, in_flight=10)
    clock.t += 2
    await scaler.tick()
    assert kube.pods == {"emails-jobfleet-a": {}}


SENTINEL_PASSWORD = "sentinel-hunter3"
SENTINEL_SPEC: dict[str, Any] = {
    **SPEC,
    "redis": {
        "sentinel": {
            "masterName": "jobs",
            "nodes": ["s1.shop:26379", "s2.shop:26380"],
            "db": 2,
            "passwordSecretRef": {"name": "sentinel", "key": "password"},
        },
        "passwordSecretRef": {"name": "redis", "key": "password"},
    },
}


def sentinel_scaler(kube: FakeKube, reader: FakeReader, clock: Clock) -> Scaler:
    return Scaler(
        kube,  # type: ignore[arg-type]
        Metrics(),
        body(SENTINEL_SPEC),
        QueueSpec.model_validate(SENTINEL_SPEC),
        identity="op-0",
        reader_factory=reader.factory,
        clock=clock,
    )


async def test_sentinel_queue_reads_through_its_sentinels_with_both_passwords() -> None:
    kube, reader, clock = FakeKube(), FakeReader(), Clock()
    kube.secrets[("shop", "sentinel", "password")] = SENTINEL_PASSWORD
    scaler = sentinel_scaler(kube, reader, clock)
    await scaler.tick()
    url = "redis+sentinel://s1.shop:26379,s2.shop:26380/jobs/2"
    assert reader.opened == [(url, PASSWORD, SENTINEL_PASSWORD, "emails")]
    assert conditions(kube.status_writes[-1])["RedisReachable"] == ("True", "Connected")
    assert SENTINEL_PASSWORD not in repr(await scaler.cached_connection())

    # A rotated Sentinel password opens a new reader once the Secret is read again.
    kube.secrets[("shop", "sentinel", "password")] = "rotated-" + SENTINEL_PASSWORD
    clock.t += 60
    await scaler.tick()
    assert reader.opened[-1] == (url, PASSWORD, "rotated-" + SENTINEL_PASSWORD, "emails")


async def test_missing_sentinel_secret_key_is_reported_without_any_password() -> None:
    kube, reader, clock = FakeKube(), FakeReader(), Clock()
    scaler = sentinel_scaler(kube, reader, clock)
    await scaler.tick()
    assert reader.opened == []
    status = kube.status_writes[-1]
    assert conditions(status)["RedisReachable"] == ("False", "RedisUnreachable")
    message = next(c["message"] for c in status["conditions"] if c["type"] == "RedisReachable")
    assert "Secret sentinel has no key password" in message
    assert PASSWORD not in json.dumps([kube.status_writes, kube.events])
