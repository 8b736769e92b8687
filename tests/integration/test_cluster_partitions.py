"""A partitioned queue on a real Redis Cluster (3 primaries, 3 replicas): its partitions on
different primaries, drained by several workers, every partition emptied."""

from __future__ import annotations

from collections.abc import Iterator

import jobfleet
import pytest
from fleet import recorder, start_workers, stop_workers
from jobfleet.keys import QueueKeys, partition_name, partitions_key
from redis.crc import key_slot
from redis_cluster import RedisCluster
from waiting import until

K = 6


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as c:
        yield c


def owners(cluster: RedisCluster, queue: str) -> list[int]:
    """The port of the primary owning each partition's slot."""
    return [
        cluster.owner(key_slot(QueueKeys(partition_name(queue, i)).prefix.encode())).port
        for i in range(K)
    ]


def spread_queue(cluster: RedisCluster) -> str:
    """A queue name whose partitions land on every primary."""
    for n in range(1000):
        if len(set(owners(cluster, f"pq{n}"))) == len(cluster.primaries()):
            return f"pq{n}"
    raise AssertionError("no queue name spreads its partitions over the primaries")


async def test_a_partitioned_queue_is_drained_on_every_primary(cluster):
    cluster.flush()
    url = cluster.url
    queue = spread_queue(cluster)
    assert len(set(owners(cluster, queue))) == 3  # the partitions' slots have different owners
    registry, done = recorder("count")
    settings = jobfleet.WorkerSettings(
        redis_url=url, http_port=None, queue={"name": queue, "partitions": K, "concurrency": 8}
    )
    workers, tasks = await start_workers(3, settings, registry)
    async with jobfleet.Client(url, queue=queue) as client:
        try:

            async def recorded() -> bool:
                return await client.conn.get(partitions_key(queue)) == str(K)

            await until(recorded, what="the workers to record the partitions")
            ids = await client.enqueue_many([{"name": "count"}] * 600)

            async def drained() -> bool:
                # Outcomes travel with a worker's next claim or renewal: the handler's count
                # runs ahead of what Redis has recorded, so wait for both.
                return len(done) >= 600 and (await client.inspect()).completed >= 600

            await until(drained, what="every partition to drain")
            assert sorted(done) == sorted(ids)  # each exactly once
            completed = [
                int((await client.engine(partition_name(queue, i)).inspect())["completed"])
                for i in range(K)
            ]
            assert completed == [100] * K  # round robin placement; every partition emptied
            stats = await client.inspect()
            assert (stats.waiting, stats.active, stats.completed) == (0, 0, 600)
            assert [s.queue for s in await client.queues()] == [queue]
            homes = {w.engine.queue for w in workers}
            assert homes <= {partition_name(queue, i) for i in range(K)}
        finally:
            await stop_workers(workers, tasks)
        assert await client.obliterate() > 600
        for node in cluster.primaries():
            with cluster.client(node) as conn:
                assert not list(conn.scan_iter(match=f"jf:{{{queue}*"))
