"""A Queue that finds its Redis through Sentinel, against a real API server.

The operator reads the queue through the Sentinel and its workers find the master the same
way; both run as pods (processes of this checkout on kwok). Assertions are about eventual
states, never about durations.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from .support import MODE, REPO, Kube, RedisServer, Tools
from .test_operator import check_reachable_and_scaling


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
    check_reachable_and_scaling(
        kube,
        tools,
        operator,
        "guarded",
        redis,
        redis={"url": None, "sentinel": {"masterName": "mymaster", "nodes": [sentinel]}},
        settings_url=f"redis+sentinel://{sentinel}/mymaster/0",
        enqueue_url=redis.url,  # straight into the master
        via="through the Sentinel",
    )
