"""The operator against a real API server (issue 4, acceptance 3).

The operator runs as a pod of the cluster (a process of this checkout on kwok) with exactly
the RBAC rules of `jobfleet_operator.rbac`, in the test's namespace; so do the worker pods it
creates. Assertions are about eventual states and decisions, never about durations.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest
from jobfleet_operator import rbac
from jobfleet_operator.deployment import CONFIG_HASH_ANNOTATION
from kubernetes import client

from .operator_pod import kill_operator, ready_pods, run_operator
from .support import Kube, RedisServer, Tools, create_namespace, pod_log, wait_for

GROUP, VERSION, PLURAL = "jobfleet.dev", "v1alpha1", "queues"
# The tag e2e/cluster.sh builds and loads on kind; on kwok the harness maps it to the
# checkout's console script.
WORKER_IMAGE = "jobfleet-worker:e2e"


# ---- helpers -----------------------------------------------------------------------------------


def queue_body(name: str, server: RedisServer, **spec: Any) -> dict[str, Any]:
    """A Queue on `server`; `spec` merges into the defaults one level deep (None removes)."""
    body: dict[str, Any] = {
        "redis": {"url": server.pod_url},
        "worker": {
            "image": WORKER_IMAGE,
            "handlers": ["e2e.test_operator_jobs"],
            "terminationGracePeriodSeconds": 10,
        },
    }
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            merged = {**body[key], **value}
            body[key] = {k: v for k, v in merged.items() if v is not None}
        else:
            body[key] = value
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Queue",
        "metadata": {"name": name},
        "spec": body,
    }


def apply(
    tools: Tools, namespace: str, body: dict[str, Any], check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [
            str(tools.kubectl),
            "--kubeconfig",
            str(tools.kubeconfig),
            "-n",
            namespace,
            "apply",
            "--server-side",
            "--field-manager=e2e",
            "-f",
            "-",
        ],
        input=json.dumps(body),
        capture_output=True,
        text=True,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl apply failed: {done.stderr}")
    return done


def get_queue(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = kube.custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return obj


def condition(queue: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (queue.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return None


def deployment(kube: Kube, namespace: str, queue: str) -> client.V1Deployment | None:
    try:
        return kube.apps.read_namespaced_deployment(f"{queue}-jobfleet", namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def replicas(kube: Kube, namespace: str, queue: str) -> int | None:
    d = deployment(kube, namespace, queue)
    return None if d is None else int(d.spec.replicas or 0)


def scale_events(kube: Kube, namespace: str, queue: str) -> list[dict[str, Any]]:
    """The operator's scale decisions about a Queue, oldest first (raw JSON: events written
    by other components may lack fields the generated client insists on)."""
    resp = client.EventsV1Api(kube.api_client).list_namespaced_event(
        namespace, _preload_content=False
    )
    items = json.loads(resp.data)["items"]
    return sorted(
        (
            e
            for e in items
            if (e.get("regarding") or {}).get("kind") == "Queue"
            and e["regarding"].get("name") == queue
            and e.get("reason") in ("ScaledUp", "ScaledDown")
        ),
        key=lambda e: e.get("eventTime") or "",
    )


def enqueue(redis_url: str, queue: str, n: int, seconds: float) -> None:
    import jobfleet

    async def go() -> None:
        async with jobfleet.Client(redis_url, queue=queue) as c:
            for start in range(0, n, 1000):
                await c.enqueue_many(
                    [
                        jobfleet.JobSpec(name="nap", payload={"s": seconds})
                        for _ in range(start, min(n, start + 1000))
                    ]
                )

    asyncio.run(go())


def check_reachable_and_scaling(
    kube: Kube,
    tools: Tools,
    namespace: str,
    name: str,
    server: RedisServer,
    *,
    redis: dict[str, Any],
    settings_url: str,
    enqueue_url: str,
    via: str,
) -> None:
    """A Queue whose Redis is the `redis` spec: RedisReachable, its workers' settings name
    `settings_url`, one worker at first, then 300 jobs enqueued at `enqueue_url` grow the
    fleet to 3 and the workers (reaching Redis `via` the route under test) run them."""
    autoscaling = {"minReplicas": 1, "maxReplicas": 3, "targetBacklogPerReplica": 10}
    body = queue_body(name, server, redis=redis, concurrency=5, autoscaling=autoscaling)
    apply(tools, namespace, body)

    def reachable() -> bool:
        c = condition(get_queue(kube, namespace, name), "RedisReachable")
        return c is not None and c["status"] == "True"

    wait_for(f"RedisReachable {via}", reachable, 90)
    settings = json.loads(
        kube.core.read_namespaced_config_map(f"{name}-jobfleet", namespace).data["settings.json"]
    )
    assert settings["redis_url"] == settings_url
    wait_for("the first worker", lambda: replicas(kube, namespace, name) == 1, 60)

    enqueue(enqueue_url, name, 300, seconds=0.5)
    wait_for("the fleet to grow on the backlog", lambda: replicas(kube, namespace, name) == 3, 90)

    def draining() -> bool:
        return get_queue(kube, namespace, name).get("status", {}).get("throughput", 0) > 0

    wait_for(f"workers {via} to run jobs", draining, 90)


def stats(redis_url: str, queue: str) -> Any:
    import jobfleet

    async def go() -> Any:
        async with jobfleet.Client(redis_url, queue=queue) as c:
            return await c.inspect()

    return asyncio.run(go())


# ---- acceptance 3 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
            "autoscaling.minReplicas must be <= autoscaling.maxReplicas",
        ),
        (
            {"concurrency": -3},
            "spec.concurrency in body should be greater than or equal to 1",
        ),
        (
            {"worker": {"mode": "lambda"}},
            'spec.worker.mode: Unsupported value: "lambda"',
        ),
        (
            {"schedules": [{"name": "nightly", "cron": "0 3 * *", "job": "nap"}]},
            "cron must have five fields",
        ),
        (
            {"redis": {"url": "redis://:hunter2@redis:6379/0"}},
            "redis.url must not contain a password",
        ),
        ({"worker": {"mode": "sidecar"}}, "worker.sidecar is required when worker.mode is sidecar"),
        ({"sla": {"targetWaitSeconds": 0}}, "spec.sla.targetWaitSeconds"),
        (
            {"autoscaling": {"scaleIn": {"drainTimeoutSeconds": -1}}},
            "spec.autoscaling.scaleIn.drainTimeoutSeconds in body should be greater than or "
            "equal to 0",
        ),
        (
            {"redis": {"sentinel": {"masterName": "mymaster", "nodes": ["sentinel:26379"]}}},
            "set exactly one of redis.url, redis.urlSecretRef, redis.sentinel and redis.cluster",
        ),
        (
            {"redis": {"url": "sentinel://s1:26379/mymaster"}},
            "redis.url must start with redis://, rediss://, unix://, redis+sentinel://, "
            "rediss+sentinel://, redis+cluster:// or rediss+cluster://",
        ),
        (
            {"redis": {"url": "redis+sentinel://:hunter2@s1:26379,s2:26379/mymaster"}},
            "redis.url must not contain a password",
        ),
        (
            {"redis": {"url": None, "sentinel": {"nodes": ["sentinel:26379"]}}},
            "spec.redis.sentinel.masterName: Required value",
        ),
        (
            {"redis": {"url": None, "sentinel": {"masterName": "my master", "nodes": ["s"]}}},
            "spec.redis.sentinel.masterName in body should match",
        ),
        (
            {"redis": {"url": None, "sentinel": {"masterName": "mymaster", "nodes": []}}},
            "spec.redis.sentinel.nodes in body should have at least 1 items",
        ),
        (
            {"redis": {"url": None, "sentinel": {"masterName": "m", "nodes": ["s:99999"]}}},
            "spec.redis.sentinel.nodes[0] in body should match",
        ),
        (
            {"redis": {"url": None, "sentinel": {"masterName": "m", "nodes": ["s:1", "s:1"]}}},
            '.spec.redis.sentinel.nodes: duplicate entries for key [="s:1"]',
        ),
    ],
)
def test_invalid_queues_are_rejected_with_readable_messages(
    tools: Tools,
    namespace: str,
    queue_crd: None,
    redis: RedisServer,
    spec: dict[str, Any],
    message: str,
) -> None:
    done = apply(tools, namespace, queue_body("bad", redis, **spec), check=False)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert "hunter2" not in done.stderr or "redis.url" not in message


def test_overlong_queue_names_are_rejected(
    tools: Tools, namespace: str, queue_crd: None, redis: RedisServer
) -> None:
    done = apply(tools, namespace, queue_body("q" * 55, redis), check=False)
    assert done.returncode != 0
    assert "Queue names are limited to 54 characters" in done.stderr, done.stderr


def test_apply_update_drift_and_delete(
    kube: Kube, tools: Tools, operator: str, redis: RedisServer
) -> None:
    ns = operator
    apply(tools, ns, queue_body("mail", redis, autoscaling={"minReplicas": 2, "maxReplicas": 4}))

    # apply -> ConfigMap + Deployment owned by the Queue, workers ready, status reported
    d = wait_for("the worker Deployment", lambda: deployment(kube, ns, "mail"), 60)
    queue = get_queue(kube, ns, "mail")
    owner = d.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Queue",
        "mail",
        queue["metadata"]["uid"],
        True,
    )
    assert d.spec.replicas == 2
    assert d.spec.template.spec.containers[0].command == ["jobfleet", "worker"]
    cm = kube.core.read_namespaced_config_map("mail-jobfleet", ns)
    assert json.loads(cm.data["settings.json"])["queue"]["name"] == "mail"
    assert not queue["metadata"].get("finalizers")  # deletion never waits for the operator

    def ready() -> dict[str, Any] | None:
        q = get_queue(kube, ns, "mail")
        c = condition(q, "Ready")
        return q if c and c["status"] == "True" and q["status"].get("readyReplicas") == 2 else None

    queue = wait_for("the Queue to report Ready with 2 workers", ready, 120)
    assert queue["status"]["observedGeneration"] == queue["metadata"]["generation"]
    assert condition(queue, "RedisReachable")["status"] == "True"  # type: ignore[index]
    printed = tools.kubectl_run("-n", ns, "get", "jfq", "mail")
    assert "READY" in printed and "OLDEST WAIT" in printed

    # spec update -> new settings -> the pod template changes -> a rollout
    old_hash = d.spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION]
    apply(
        tools,
        ns,
        queue_body("mail", redis, concurrency=7, autoscaling={"minReplicas": 2, "maxReplicas": 4}),
    )

    def rolled() -> bool:
        dep = deployment(kube, ns, "mail")
        assert dep is not None
        new_hash = dep.spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION]
        cm = kube.core.read_namespaced_config_map("mail-jobfleet", ns)
        return (
            new_hash != old_hash
            and json.loads(cm.data["settings.json"])["queue"]["concurrency"] == 7
        )

    wait_for("the settings change to roll out", rolled, 60)
    wait_for(
        "the rollout to finish",
        lambda: (
            (dep := deployment(kube, ns, "mail")) is not None
            and dep.status.updated_replicas == 2
            and dep.status.ready_replicas == 2
            and (dep.status.replicas or 0) == 2
        ),
        180,
    )

    # manual drift on the Deployment is repaired
    kube.apps.patch_namespaced_deployment(
        "mail-jobfleet",
        ns,
        {"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 99}}}},
    )
    wait_for(
        "the drift to be repaired",
        lambda: (
            deployment(kube, ns, "mail").spec.template.spec.termination_grace_period_seconds == 10
        ),  # type: ignore[union-attr]
        60,
    )

    # ... and so is a manual edit of the settings
    kube.core.patch_namespaced_config_map("mail-jobfleet", ns, {"data": {"settings.json": "{}"}})
    wait_for(
        "the settings to be repaired",
        lambda: (
            json.loads(
                kube.core.read_namespaced_config_map("mail-jobfleet", ns).data["settings.json"]
            )
            .get("queue", {})
            .get("concurrency")
            == 7
        ),
        60,
    )

    # delete -> the garbage collector removes the children
    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "mail")
    wait_for(
        "the Deployment to be garbage collected", lambda: deployment(kube, ns, "mail") is None, 120
    )
    wait_for(
        "the ConfigMap to be garbage collected",
        lambda: (
            not [
                c
                for c in kube.core.list_namespaced_config_map(ns).items
                if c.metadata.name == "mail-jobfleet"
            ]
        ),
        60,
    )


def test_operator_restart_keeps_objects_and_replicas(
    kube: Kube, tools: Tools, operator: str, redis: RedisServer
) -> None:
    ns = operator
    apply(tools, ns, queue_body("orders", redis, autoscaling={"minReplicas": 3, "maxReplicas": 5}))
    wait_for("3 workers", lambda: replicas(kube, ns, "orders") == 3, 60)
    first = deployment(kube, ns, "orders")
    assert first is not None

    # Kill the operator mid-way; its Deployment starts a new one.
    old = kill_operator(kube, ns)
    wait_for(
        "a new operator pod",
        lambda: [
            p for p in ready_pods(kube, ns, "jobfleet-operator") if p.metadata.name not in old
        ],
        180,
    )
    # A spec change shows that the new operator acts (after taking over the Lease).
    apply(
        tools,
        ns,
        queue_body(
            "orders", redis, concurrency=9, autoscaling={"minReplicas": 3, "maxReplicas": 5}
        ),
    )
    wait_for(
        "the restarted operator to reconcile",
        lambda: (
            json.loads(
                kube.core.read_namespaced_config_map("orders-jobfleet", ns).data["settings.json"]
            )["queue"]["concurrency"]
            == 9
        ),
        120,
    )
    deployments = [
        d
        for d in kube.apps.list_namespaced_deployment(ns).items
        if d.metadata.name.startswith("orders")
    ]
    assert [d.metadata.name for d in deployments] == ["orders-jobfleet"]
    assert deployments[0].metadata.uid == first.metadata.uid
    assert deployments[0].spec.replicas == 3
    configmaps = [
        c
        for c in kube.core.list_namespaced_config_map(ns).items
        if c.metadata.name.startswith("orders")
    ]
    assert len(configmaps) == 1


def test_backlog_scales_up_to_max_then_back_to_min(
    kube: Kube, tools: Tools, operator: str, redis: RedisServer
) -> None:
    ns = operator
    apply(
        tools,
        ns,
        queue_body(
            "burst",
            redis,
            concurrency=50,
            autoscaling={
                "minReplicas": 1,
                "maxReplicas": 8,
                "targetBacklogPerReplica": 500,
                "scaleDown": {"stabilizationWindowSeconds": 10},
            },
        ),
    )
    wait_for("the first worker", lambda: replicas(kube, ns, "burst") == 1, 60)
    enqueue(redis.url, "burst", 5000, seconds=1.0)

    wait_for("the fleet to reach maxReplicas", lambda: replicas(kube, ns, "burst") == 8, 60)

    def ups() -> list[str]:
        return [e["note"] for e in scale_events(kube, ns, "burst") if e["reason"] == "ScaledUp"]

    wait_for(
        "the ScaledUp event to 8",
        lambda: any(n.startswith(("1 -> 8", "5 -> 8")) for n in ups()),
        30,
    )
    # 5,000 waiting at 500 per replica from 1: +4 then +3 -- two decisions, i.e. two intervals.
    notes = ups()
    assert len(notes) <= 2, notes
    assert "bounded to 8 by maxReplicas" in notes[-1]

    wait_for("the backlog to drain", lambda: stats(redis.url, "burst").backlog == 0, 300, 1.0)
    wait_for("the fleet to return to minReplicas", lambda: replicas(kube, ns, "burst") == 1, 120)
    # Down only as the window's highest recommendation decays, ending at minReplicas (the
    # Event follows the scale call, so it may be listed a moment after the new size).

    def last_down() -> str | None:
        notes = [e["note"] for e in scale_events(kube, ns, "burst") if e["reason"] == "ScaledDown"]
        return notes[-1] if notes and notes[-1].split(":")[0].endswith("-> 1") else None

    wait_for("the ScaledDown event to minReplicas", last_down, 30)


def test_scale_to_zero_and_one_job_wakes_it(
    kube: Kube, tools: Tools, operator: str, redis: RedisServer
) -> None:
    ns = operator
    apply(
        tools,
        ns,
        queue_body(
            "nightly",
            redis,
            autoscaling={
                "minReplicas": 0,
                "maxReplicas": 3,
                "cooldownSeconds": 4,
                "scaleDown": {"stabilizationWindowSeconds": 2},
            },
        ),
    )
    d = wait_for("the Deployment", lambda: deployment(kube, ns, "nightly"), 60)
    assert d.spec.replicas == 0  # a new queue with min 0 starts empty

    def zero() -> bool:
        q = get_queue(kube, ns, "nightly")
        c = condition(q, "Ready")
        return (
            c is not None and c["reason"] == "ScaledToZero" and replicas(kube, ns, "nightly") == 0
        )

    wait_for("the Queue to report ScaledToZero", zero, 60)
    enqueue(redis.url, "nightly", 1, seconds=0)
    wait_for("one job to wake the fleet", lambda: (replicas(kube, ns, "nightly") or 0) >= 1, 30)
    wait_for(
        "the job to complete", lambda: stats(redis.url, "nightly").completed_total == 1, 180, 1.0
    )
    wait_for("the fleet to return to zero", lambda: replicas(kube, ns, "nightly") == 0, 120)


def test_redis_down_holds_replicas(
    kube: Kube, tools: Tools, operator: str, redis: RedisServer
) -> None:
    ns = operator
    apply(
        tools,
        ns,
        queue_body(
            "hold",
            redis,
            autoscaling={
                "minReplicas": 0,
                "maxReplicas": 4,
                "cooldownSeconds": 0,
                "scaleDown": {"stabilizationWindowSeconds": 0},
            },
        ),
    )
    wait_for("the Deployment", lambda: deployment(kube, ns, "hold"), 60)
    enqueue(redis.url, "hold", 1000, seconds=30.0)
    wait_for("workers for the backlog", lambda: (replicas(kube, ns, "hold") or 0) >= 2, 60)
    held = replicas(kube, ns, "hold")
    redis.stop()
    try:

        def unreachable() -> dict[str, Any] | None:
            c = condition(get_queue(kube, ns, "hold"), "RedisReachable")
            return c if c and c["status"] == "False" else None

        c = wait_for("RedisReachable=False", unreachable, 60)
        assert "holding" in c["message"]
        # several intervals later the fleet is still the same size: never zero on an error
        wait_for(
            "a few more ticks",
            lambda: get_queue(kube, ns, "hold")["status"].get("desiredReplicas") == held,
            30,
        )
        assert replicas(kube, ns, "hold") == held
    finally:
        redis.start()
    wait_for(
        "RedisReachable=True again",
        lambda: (
            (c := condition(get_queue(kube, ns, "hold"), "RedisReachable")) is not None
            and c["status"] == "True"
        ),
        60,
    )


def lease_holder(kube: Kube, namespace: str) -> str | None:
    lease = client.CoordinationV1Api(kube.api_client).read_namespaced_lease(
        "jobfleet-operator", namespace
    )
    return lease.spec.holder_identity or None


def test_two_operator_replicas_never_act_at_once(
    kube: Kube, tools: Tools, operator: str, redis: RedisServer
) -> None:
    ns = operator
    kube.apps.patch_namespaced_deployment_scale("jobfleet-operator", ns, {"spec": {"replicas": 2}})

    def two_ready() -> list[client.V1Pod] | None:
        pods = ready_pods(kube, ns, "jobfleet-operator")
        return pods if len(pods) == 2 else None

    pods = wait_for("two operator replicas", two_ready, 180)
    leader = wait_for("a Lease holder", lambda: lease_holder(kube, ns), 60)
    [standby] = [p.metadata.name for p in pods if p.metadata.name != leader]
    wait_for(
        "the standby to wait for the Lease",
        lambda: "waiting for leadership" in pod_log(kube, ns, standby),
        60,
    )

    apply(tools, ns, queue_body("pair", redis, autoscaling={"minReplicas": 1, "maxReplicas": 2}))
    wait_for("the worker Deployment", lambda: deployment(kube, ns, "pair"), 60)
    assert "acquired leadership" not in pod_log(kube, ns, standby)
    assert "created Deployment" not in pod_log(kube, ns, standby)

    # The leader goes away (a clean shutdown releases the Lease): another replica takes over.
    kube.core.delete_namespaced_pod(leader, ns)

    def taken_over() -> str | None:
        holder = lease_holder(kube, ns)
        return holder if holder and holder != leader else None

    new_leader = wait_for("another replica to take the Lease", taken_over, 120)
    apply(
        tools,
        ns,
        queue_body("pair", redis, concurrency=3, autoscaling={"minReplicas": 1, "maxReplicas": 2}),
    )
    wait_for(
        "the new leader to reconcile",
        lambda: (
            json.loads(
                kube.core.read_namespaced_config_map("pair-jobfleet", ns).data["settings.json"]
            )["queue"]["concurrency"]
            == 3
        ),
        120,
    )
    assert "acquired leadership" in pod_log(kube, ns, new_leader)


# A handler server in "any language" (here: stdlib Python), as a user's sidecar would be.
SIDECAR_APP = """
import http.server, json, os
class Jobs(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ok = self.path == "/jobs/greet"
        out = json.dumps({"hello": body["payload"]["name"]} if ok else {}).encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(out)
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
import threading
# On kwok the harness aims probes at $JOBFLEET_HTTP_PORT; a kubelet would use the jobs port.
if os.environ.get("JOBFLEET_HTTP_PORT"):
    probe_port = int(os.environ["JOBFLEET_HTTP_PORT"])
    probe = http.server.ThreadingHTTPServer(("127.0.0.1", probe_port), Jobs)
    threading.Thread(target=probe.serve_forever, daemon=True).start()
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["JOBS_PORT"])), Jobs).serve_forever()
"""


def test_sidecar_mode_delivers_jobs_to_the_users_container(
    kube: Kube, tools: Tools, operator: str, redis: RedisServer
) -> None:
    import socket

    with socket.socket() as s:  # pods share the host's loopback: pick a free port
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    ns = operator
    apply(
        tools,
        ns,
        queue_body(
            "greetings",
            redis,
            worker={
                "image": WORKER_IMAGE,
                "mode": "sidecar",
                "terminationGracePeriodSeconds": 10,
                "sidecar": {
                    "image": "python:3.12-slim",
                    "command": ["python", "-c", SIDECAR_APP],
                    "port": port,
                    "readinessPath": "/ready",
                    "env": [{"name": "JOBS_PORT", "value": str(port)}],
                },
            },
        ),
    )
    d = wait_for("the worker Deployment", lambda: deployment(kube, ns, "greetings"), 60)
    [side] = d.spec.template.spec.init_containers
    assert (side.name, side.restart_policy) == ("handler", "Always")

    import jobfleet

    async def roundtrip() -> Any:
        async with jobfleet.Client(redis.url, queue="greetings") as c:
            job_id = await c.enqueue("greet", {"name": "ada"})
            return await c.wait(job_id, timeout=120)

    info = asyncio.run(roundtrip())
    assert info.state == jobfleet.JobState.COMPLETED
    assert info.result == {"hello": "ada"}


def test_reconciler_rejects_what_the_schema_cannot_check(
    kube: Kube, tools: Tools, operator: str, redis: RedisServer
) -> None:
    """A cron that has five fields but no meaning passes the API server; the operator keeps
    the running fleet as it was and says why on the Queue and in a Warning event."""
    ns = operator
    apply(tools, ns, queue_body("cronjobs", redis, concurrency=4))
    wait_for("the worker Deployment", lambda: deployment(kube, ns, "cronjobs"), 60)
    schedules = [{"name": "nightly", "cron": "0 25 * * *", "job": "nap"}]
    apply(tools, ns, queue_body("cronjobs", redis, concurrency=5, schedules=schedules))

    def refused() -> dict[str, Any] | None:
        q = get_queue(kube, ns, "cronjobs")
        c = condition(q, "Ready")
        # The engine's own cron check speaks (one validator for the worker and the operator).
        message = c["message"] if c else ""
        ok = c and c["reason"] == "InvalidSpec" and "cron '0 25 * * *' is not valid" in message
        return q if ok else None

    q = wait_for("Ready=False/InvalidSpec", refused, 60)
    assert q["status"]["observedGeneration"] == q["metadata"]["generation"]
    settings = json.loads(
        kube.core.read_namespaced_config_map("cronjobs-jobfleet", ns).data["settings.json"]
    )
    assert settings["queue"]["concurrency"] == 4  # nothing of the refused spec applied

    def warned() -> bool:
        api = client.EventsV1Api(kube.api_client)
        items = json.loads(api.list_namespaced_event(ns, _preload_content=False).data)["items"]
        return any(e.get("reason") == "InvalidSpec" and e.get("type") == "Warning" for e in items)

    wait_for("a Warning event InvalidSpec", warned, 30)


def test_queue_name_cannot_change(
    tools: Tools, namespace: str, queue_crd: None, redis: RedisServer
) -> None:
    apply(tools, namespace, queue_body("ledger", redis))
    # Spelling out the name it already has is fine; a different one strands the old jobs.
    apply(tools, namespace, queue_body("ledger", redis, queueName="ledger"))
    done = apply(tools, namespace, queue_body("ledger", redis, queueName="ledger-v2"), check=False)
    assert done.returncode != 0
    assert "spec.queueName cannot change" in done.stderr, done.stderr


def test_paused_spec_pauses_the_queue_in_redis(
    kube: Kube, tools: Tools, operator: str, redis: RedisServer
) -> None:
    ns = operator
    apply(tools, ns, queue_body("reports", redis, paused=True))
    wait_for("the queue to be paused in Redis", lambda: stats(redis.url, "reports").paused, 60)
    wait_for(
        "status.paused",
        lambda: (get_queue(kube, ns, "reports").get("status") or {}).get("paused") is True,
        60,
    )
    enqueue(redis.url, "reports", 3, seconds=0)  # enqueue keeps accepting while paused
    apply(tools, ns, queue_body("reports", redis, paused=False))
    wait_for("the queue to resume", lambda: not stats(redis.url, "reports").paused, 60)
    wait_for("the jobs to run", lambda: stats(redis.url, "reports").completed_total == 3, 120)


def test_one_operator_watches_a_list_of_namespaces(
    kube: Kube, tools: Tools, namespace: str, queue_crd: None, redis: RedisServer
) -> None:
    """The operator lives in one namespace and manages Queues in another, with a Role there."""
    other = f"{namespace[:50]}-b"
    create_namespace(kube, other)
    try:
        roles = rbac.manifests(other, operator_namespace=namespace)
        tools.kubectl_run("apply", "-f", "-", input="\n---\n".join(json.dumps(r) for r in roles))
        operator = run_operator(kube, tools, namespace, watched=f"{namespace},{other}")
        next(operator)
        try:
            apply(tools, other, queue_body("remote", redis, autoscaling={"minReplicas": 2}))
            d = wait_for(
                "the Deployment in the other namespace",
                lambda: deployment(kube, other, "remote"),
                60,
            )
            assert d.spec.replicas == 2
            wait_for(
                "status in the other namespace",
                lambda: (
                    (get_queue(kube, other, "remote").get("status") or {}).get("desiredReplicas")
                    == 2
                ),
                60,
            )
        finally:
            next(operator, None)
    finally:
        kube.core.delete_namespace(other)
