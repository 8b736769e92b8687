"""A Queue on a Redis Cluster (`spec.redis.cluster.nodes`), against a real API server.

The operator reads the queue through the cluster client and its workers claim on the node
owning the queue's slot; both run as pods (processes of this checkout on kwok). The cluster's
processes start here, on the host's loopback. Assertions are about eventual states, never
about durations.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from .support import MODE, REPO, Kube, RedisServer, Tools, wait_for
from .test_operator import (
    apply,
    condition,
    enqueue,
    get_queue,
    install_crd,
    queue_body,
    replicas,
    run_operator,
)


@pytest.fixture
def operator(kube: Kube, tools: Tools, namespace: str) -> Iterator[str]:
    install_crd(tools)
    yield from run_operator(kube, tools, namespace)


@pytest.fixture
def redis_cluster() -> Iterator[Any]:
    """Three primaries (no replicas: this test is about routing, not failover)."""
    if MODE == "kind":
        pytest.skip("the cluster runs on the host's loopback, which pods on kind cannot reach")
    sys.path.insert(0, str(REPO / "tests"))
    from redis_cluster import RedisCluster

    with RedisCluster(primaries=3, replicas=0) as cluster:
        yield cluster


def test_cluster_queue_is_reachable_and_scales_on_a_backlog(
    kube: Kube, tools: Tools, operator: str, redis: RedisServer, redis_cluster: Any
) -> None:
    ns = operator
    nodes = [f"127.0.0.1:{n.port}" for n in redis_cluster.nodes]
    apply(
        tools,
        ns,
        queue_body(
            "sharded",
            redis,
            redis={"url": None, "cluster": {"nodes": nodes}},
            concurrency=5,
            autoscaling={"minReplicas": 1, "maxReplicas": 3, "targetBacklogPerReplica": 10},
        ),
    )

    def reachable() -> bool:
        c = condition(get_queue(kube, ns, "sharded"), "RedisReachable")
        return c is not None and c["status"] == "True"

    wait_for("RedisReachable on the cluster", reachable, 90)
    settings = json.loads(
        kube.core.read_namespaced_config_map("sharded-jobfleet", ns).data["settings.json"]
    )
    assert settings["redis_url"] == f"redis+cluster://{','.join(nodes)}/"
    wait_for("the first worker", lambda: replicas(kube, ns, "sharded") == 1, 60)

    enqueue(redis_cluster.url, "sharded", 300, seconds=0.5)
    wait_for("the fleet to grow on the backlog", lambda: replicas(kube, ns, "sharded") == 3, 90)

    def draining() -> bool:
        return get_queue(kube, ns, "sharded").get("status", {}).get("throughput", 0) > 0

    wait_for("workers on the cluster to run jobs", draining, 90)
