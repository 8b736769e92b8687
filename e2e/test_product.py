"""The scenario that proves the product (issue 3, acceptance 3), as a user would run it.

`helm install` the chart, apply a Queue that may scale from 0 to 5 workers at 200 jobs per
worker, enqueue 3,000 jobs of 20 ms, and watch: the Deployment scales up, real worker
processes run every job, the fleet goes back to zero, and the workers removed on the way
down drain on SIGTERM instead of dying with jobs in hand. Nothing here asserts a duration.
"""

from __future__ import annotations

import asyncio
from typing import Any

import jobfleet
from kubernetes import client

from .support import Kube, RedisServer, Tools, pod_log, wait_for
from .test_chart_install import RELEASE, helm_install
from .test_operator import WORKER_IMAGE, apply, replicas, scale_events, stats

JOBS = 3_000


def all_jobs(redis_url: str, queue: str, ids: list[str]) -> list[jobfleet.JobInfo]:
    async def go() -> list[jobfleet.JobInfo]:
        async with jobfleet.Client(redis_url, queue=queue) as c:
            return [await c.get(i) for i in ids]

    return asyncio.run(go())


def enqueue(redis_url: str, queue: str) -> list[str]:
    async def go() -> list[str]:
        async with jobfleet.Client(redis_url, queue=queue) as c:
            return await c.enqueue_many(
                [{"name": "nap", "payload": {"s": 0.02, "n": i}} for i in range(JOBS)]
            )

    return asyncio.run(go())


def test_helm_install_queue_burst_scales_up_completes_everything_and_back_to_zero(
    kube: Kube, tools: Tools, namespace: str, redis: RedisServer
) -> None:
    helm_install(tools, namespace, f"redis.url={redis.pod_url}")
    try:
        _scenario(kube, tools, namespace, redis)
    finally:
        tools.helm_run("uninstall", RELEASE, "--namespace", namespace, "--wait", check=False)


def _scenario(kube: Kube, tools: Tools, ns: str, redis: RedisServer) -> None:
    queue: dict[str, Any] = {
        "apiVersion": "jobfleet.dev/v1alpha1",
        "kind": "Queue",
        "metadata": {"name": "work"},
        "spec": {
            "redis": {"url": redis.pod_url},
            "worker": {
                "image": WORKER_IMAGE,
                "handlers": ["e2e.test_operator_jobs"],
                "terminationGracePeriodSeconds": 15,
            },
            "concurrency": 20,
            "autoscaling": {
                "minReplicas": 0,
                "maxReplicas": 5,
                "targetBacklogPerReplica": 200,
                "cooldownSeconds": 5,
                "scaleDown": {"stabilizationWindowSeconds": 5},
            },
        },
    }
    apply(tools, ns, queue)
    wait_for("the Deployment at zero replicas", lambda: replicas(kube, ns, "work") == 0, 120)

    ids = enqueue(redis.url, "work")
    seen: set[str] = set()

    def grown() -> bool:
        for pod in kube.core.list_namespaced_pod(ns, label_selector=_workers(ns)).items:
            seen.add(pod.metadata.name)
        return (replicas(kube, ns, "work") or 0) >= 2

    wait_for("the fleet to scale up", grown, 120)
    wait_for("every job to complete", lambda: stats(redis.url, "work").completed == JOBS, 600, 1)
    wait_for("the fleet to scale back to zero", lambda: replicas(kube, ns, "work") == 0, 300)

    def gone() -> bool:
        pods = kube.core.list_namespaced_pod(ns, label_selector=_workers(ns)).items
        seen.update(p.metadata.name for p in pods)
        return not pods

    wait_for("the worker pods to terminate", gone, 180)

    # None lost: every job completed, once or more, and none needed rescuing.
    infos = all_jobs(redis.url, "work", ids)
    assert [i for i in infos if i.state is not jobfleet.JobState.COMPLETED] == []
    final = stats(redis.url, "work")
    assert (final.waiting, final.active, final.delayed, final.dead) == (0, 0, 0, 0)
    # A worker killed with jobs in hand would leave expired leases behind: there were none.
    assert final.recovered_total == 0
    assert final.failed_total == 0

    ups = [e for e in scale_events(kube, ns, "work") if e["reason"] == "ScaledUp"]
    downs = [e for e in scale_events(kube, ns, "work") if e["reason"] == "ScaledDown"]
    assert ups and downs
    assert downs[-1]["note"].split(":")[0].endswith("-> 0"), downs[-1]["note"]

    # Every worker pod that ran was stopped by SIGTERM and drained: its log ends with the
    # worker's own shutdown lines, not a crash. (A deleted pod's log outlives it only on the
    # kwok harness; on kind the recovered_total check above is the proof.)
    assert len(seen) >= 2
    if kube.harness:
        for name in seen:
            log = _log(kube, ns, name)
            assert "stopping:" in log and "stopped:" in log, f"{name} did not drain:\n{log[-2000:]}"


def _workers(ns: str) -> str:
    return "app.kubernetes.io/name=jobfleet-worker,app.kubernetes.io/instance=work"


def _log(kube: Kube, ns: str, pod: str) -> str:
    try:
        return pod_log(kube, ns, pod)
    except client.ApiException:
        return ""
