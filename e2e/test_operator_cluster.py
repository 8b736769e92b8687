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
    check_reachable_and_scaling,
    condition,
    enqueue,
    get_queue,
    queue_body,
    replicas,
)


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
    nodes = [f"127.0.0.1:{n.port}" for n in redis_cluster.nodes]
    check_reachable_and_scaling(
        kube,
        tools,
        operator,
        "sharded",
        redis,
        redis={"url": None, "cluster": {"nodes": nodes}},
        settings_url=f"redis+cluster://{','.join(nodes)}/",
        enqueue_url=redis_cluster.url,
        via="on the cluster",
    )


def test_partitioned_queue_scales_on_its_logical_backlog(
    kube: Kube, tools: Tools, operator: str, redis: RedisServer, redis_cluster: Any
) -> None:
    """A Queue of K = 3 partitions, one on each primary: the autoscaler sizes the fleet on
    the sum of the partitions (no one partition holds enough to ask for that many replicas)."""
    from jobfleet.keys import partition_name
    from redis.crc import key_slot

    ns, name, k, jobs = operator, "parted", 3, 300
    slots = [key_slot(partition_name(name, i).encode()) for i in range(k)]
    owners = {redis_cluster.owner(slot).port for slot in slots}
    assert len(owners) == k, f"partitions of {name!r} share a primary: pick another name"
    nodes = [f"127.0.0.1:{n.port}" for n in redis_cluster.nodes]
    # 120 per replica: the whole backlog (300) asks for 3 replicas, one partition's share
    # (100) for 1; so 3 replicas can only come from the logical sum.
    body = queue_body(
        name,
        redis,
        redis={"url": None, "cluster": {"nodes": nodes}},
        partitions=k,
        concurrency=5,
        autoscaling={"minReplicas": 1, "maxReplicas": 3, "targetBacklogPerReplica": 120},
    )
    apply(tools, ns, body)

    def registered() -> bool:
        queue = get_queue(kube, ns, name)
        c = condition(queue, "RedisReachable")
        workers = (queue.get("status") or {}).get("workers") or 0
        return c is not None and c["status"] == "True" and workers >= 1

    wait_for("a worker registered on the cluster", registered, 120)
    settings = json.loads(
        kube.core.read_namespaced_config_map(f"{name}-jobfleet", ns).data["settings.json"]
    )
    assert settings["queue"]["partitions"] == k
    assert replicas(kube, ns, name) == 1

    enqueue(redis_cluster.url, name, jobs, seconds=1.0)
    # The backlog really is spread: each partition's slot holds keys on its own primary.
    for slot in slots:
        with redis_cluster.client(redis_cluster.owner(slot)) as conn:
            assert int(conn.execute_command("CLUSTER COUNTKEYSINSLOT", slot)) > 0, slot

    def logical_backlog() -> int | None:
        backlog = (get_queue(kube, ns, name).get("status") or {}).get("backlog")
        return backlog if backlog is not None and backlog > jobs // k else None

    wait_for("status.backlog above one partition's share", logical_backlog, 60)
    wait_for("the fleet to grow on the logical backlog", lambda: replicas(kube, ns, name) == 3, 90)
    reason = get_queue(kube, ns, name)["status"]["lastScaleReason"]
    assert "per replica" in reason, reason


def test_partitions_cannot_change_after_creation(
    tools: Tools, namespace: str, queue_crd: None, redis: RedisServer
) -> None:
    """K is fixed by a CEL transition rule: the API server itself refuses a change."""
    apply(tools, namespace, queue_body("ledger", redis))
    # Unset is K = 1 (the schema's default): spelling it out is no change.
    apply(tools, namespace, queue_body("ledger", redis, partitions=1))
    done = apply(tools, namespace, queue_body("ledger", redis, partitions=4), check=False)
    assert done.returncode != 0
    assert "spec.partitions cannot change after creation" in done.stderr, done.stderr
    assert "docs/partitions.md" in done.stderr, done.stderr
    # A new Queue takes any K in range, and keeps it.
    apply(tools, namespace, queue_body("ledger-wide", redis, partitions=8))
    apply(tools, namespace, queue_body("ledger-wide", redis, partitions=8, concurrency=7))
    done = apply(tools, namespace, queue_body("ledger-wide", redis, partitions=1), check=False)
    assert "spec.partitions cannot change after creation" in done.stderr, done.stderr
    done = apply(tools, namespace, queue_body("ledger-big", redis, partitions=257), check=False)
    assert done.returncode != 0 and "256" in done.stderr, done.stderr
