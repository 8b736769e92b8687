"""A Queue that finds its Redis through Sentinel, against a real API server.

The operator reads the queue through the Sentinel and its workers find the master the same
way; both run as pods (processes of this checkout on kwok). Assertions are about eventual
states, never about durations.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

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
def sentinel(redis: RedisServer) -> Iterator[str]:
    """A Sentinel watching the test's Redis as `mymaster`; its host:port."""
    if MODE == "kind":
        pytest.skip("the Sentinel runs on the host's loopback, which pods on kind cannot reach")
    sys.path.insert(0, str(REPO / "tests"))
    from redis_server import SentinelServer

    with SentinelServer(redis.port) as server:
        yield server.address


def test_sentinel_queue_is_reachable_and_scales_on_a_backlog(
    kube: Kube, tools: Tools, operator: str, redis: RedisServer, sentinel: str
) -> None:
    ns = operator
    sentinel_redis = {"url": None, "sentinel": {"masterName": "mymaster", "nodes": [sentinel]}}
    apply(
        tools,
        ns,
        queue_body(
            "guarded",
            redis,
            redis=sentinel_redis,
            concurrency=5,
            autoscaling={"minReplicas": 1, "maxReplicas": 3, "targetBacklogPerReplica": 10},
        ),
    )

    def reachable() -> bool:
        c = condition(get_queue(kube, ns, "guarded"), "RedisReachable")
        return c is not None and c["status"] == "True"

    wait_for("RedisReachable through the Sentinel", reachable, 90)
    settings = json.loads(
        kube.core.read_namespaced_config_map("guarded-jobfleet", ns).data["settings.json"]
    )
    assert settings["redis_url"] == f"redis+sentinel://{sentinel}/mymaster/0"
    wait_for("the first worker", lambda: replicas(kube, ns, "guarded") == 1, 60)

    enqueue(redis.url, "guarded", 300, seconds=0.5)  # straight into the master
    wait_for("the fleet to grow on the backlog", lambda: replicas(kube, ns, "guarded") == 3, 90)

    def draining() -> bool:
        return get_queue(kube, ns, "guarded").get("status", {}).get("throughput", 0) > 0

    wait_for("workers found through the Sentinel to run jobs", draining, 90)
