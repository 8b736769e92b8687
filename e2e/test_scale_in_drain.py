"""Drain before delete on a real API server (issue 10, points 3 and 6).

Real operator, real worker pods (processes on kwok, SIGTERM then SIGKILL after their grace
period), real ReplicaSet controller choosing which pods to delete, real Redis. The fleet runs
30 s jobs with `terminationGracePeriodSeconds: 5`, so any pod removed while it holds one
would give the job back at SIGTERM and it would run again: every job's starts are counted
by the handler itself (`e2e:starts:<queue>`) and on the job hash (`attempt`, `releases`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jobfleet
import pytest
import redis as redis_sync
from kubernetes import client

from .operator_pod import kill_operator, operator_pods
from .support import Kube, RedisServer, Tools, wait_for
from .test_operator import apply, get_queue, queue_body, replicas

LONG, SHORT = 30.0, 1.0


def drain_queue(name: str, server: RedisServer) -> dict[str, Any]:
    # 3 long jobs at critical priority go before 8 short ones: by the time the backlog
    # falls (the short ones done) all 3 long ones run, at most 2 per pod (concurrency 2),
    # so a scale-in to 1 must remove at least one pod that holds a 30 s job.
    return queue_body(
        name,
        server,
        concurrency=2,
        worker={"terminationGracePeriodSeconds": 5},
        autoscaling={
            "minReplicas": 1,
            "maxReplicas": 3,
            "targetBacklogPerReplica": 4,
            "scaleDown": {"stabilizationWindowSeconds": 0},
            "scaleIn": {"drainTimeoutSeconds": 120},
        },
    )


def enqueue_mix(url: str, queue: str, shorts: int = 8, longs: int = 3) -> list[str]:
    async def go() -> list[str]:
        async with jobfleet.Client(url, queue=queue) as c:
            first = [
                jobfleet.JobSpec(name="counted-nap", payload={"s": LONG}, priority="critical")
                for _ in range(longs)
            ]
            rest = [
                jobfleet.JobSpec(name="counted-nap", payload={"s": SHORT}, priority="low")
                for _ in range(shorts)
            ]
            return await c.enqueue_many([*first, *rest])

    return asyncio.run(go())


def workers(url: str, queue: str) -> dict[str, jobfleet.WorkerInfo]:
    async def go() -> dict[str, jobfleet.WorkerInfo]:
        async with jobfleet.Client(url, queue=queue) as c:
            return await c.workers()

    return asyncio.run(go())


def live_workers(kube: Kube, ns: str, queue: str, url: str) -> list[jobfleet.WorkerInfo]:
    """Workers of pods that are not being deleted (a terminating pod's worker may still be
    registered, and drained, for the moment its shutdown takes)."""
    alive = pods(kube, ns, queue)
    return [w for w in workers(url, queue).values() if w.hostname in alive]


def pods(kube: Kube, ns: str, queue: str) -> set[str]:
    """Worker pods of the queue that are not being deleted."""
    listed = kube.core.list_namespaced_pod(ns, label_selector=f"jobfleet.dev/queue={queue}")
    return {p.metadata.name for p in listed.items if p.metadata.deletion_timestamp is None}


def in_flight_by_pod(found: dict[str, jobfleet.WorkerInfo]) -> dict[str, int]:
    out: dict[str, int] = {}
    for w in found.values():
        out[w.hostname] = out.get(w.hostname, 0) + w.in_flight
    return out


@dataclass
class Watch:
    """What the test saw of the drains while polling: the pods drained, and the most jobs
    in flight seen on one of them (the interesting case is a drained pod still busy)."""

    drained: set[str] = field(default_factory=set)
    busy_drained: int = 0

    def look(self, kube: Kube, ns: str, queue: str, url: str) -> dict[str, Any] | None:
        drain = (get_queue(kube, ns, queue).get("status") or {}).get("drain")
        if drain:
            load = in_flight_by_pod(workers(url, queue))
            self.drained |= set(drain["pods"])
            self.busy_drained = max([self.busy_drained, *(load.get(p, 0) for p in drain["pods"])])
        return drain if drain else None


def starts(url: str, queue: str) -> dict[str, int]:
    conn = redis_sync.Redis.from_url(url, decode_responses=True)
    try:
        return {k: int(v) for k, v in conn.hgetall(f"e2e:starts:{queue}").items()}
    finally:
        conn.close()


def assert_nothing_interrupted(url: str, queue: str, ids: list[str]) -> None:
    """Every job ran exactly once: started once (the handler's count), one attempt, never
    released (the engine's count), never recovered from an expired lease."""
    assert starts(url, queue) == dict.fromkeys(ids, 1)
    conn = redis_sync.Redis.from_url(url, decode_responses=True)
    try:
        for job_id in ids:
            h = conn.hgetall(f"jf:{{{queue}}}:job:{job_id}")
            assert (h["state"], h["attempt"], h.get("releases", "0")) == ("completed", "1", "0"), h
    finally:
        conn.close()
    stats = asyncio.run(_inspect(url, queue))
    assert stats.recovered_total == 0


async def _inspect(url: str, queue: str) -> Any:
    async with jobfleet.Client(url, queue=queue) as c:
        return await c.inspect()


def grow_to_three(
    kube: Kube, tools: Tools, ns: str, server: RedisServer, queue: str
) -> tuple[list[str], set[str]]:
    apply(tools, ns, drain_queue(queue, server))
    wait_for("the first worker", lambda: len(workers(server.url, queue)) == 1, 120)
    ids = enqueue_mix(server.url, queue)
    wait_for("three workers", lambda: len(workers(server.url, queue)) == 3, 120)
    return ids, pods(kube, ns, queue)


def until_drained_busy(
    kube: Kube, ns: str, queue: str, url: str, watch: Watch
) -> Callable[[], bool]:
    def check() -> bool:
        watch.look(kube, ns, queue, url)
        return watch.busy_drained > 0

    return check


def finished(kube: Kube, ns: str, queue: str, url: str, ids: list[str], watch: Watch) -> bool:
    watch.look(kube, ns, queue, url)
    stats = asyncio.run(_inspect(url, queue))
    return (
        stats.completed_total == len(ids)
        and replicas(kube, ns, queue) == 1
        and len(pods(kube, ns, queue)) == 1
        and not (get_queue(kube, ns, queue).get("status") or {}).get("drain")
    )


def test_scale_in_drains_the_least_busy_pods_and_interrupts_no_job(
    kube: Kube,
    tools: Tools,
    operator: str,
    redis: RedisServer,
) -> None:
    """3 -> 1 as the backlog falls while 30 s jobs run: the pods removed are exactly the
    drained ones, chosen by fewest jobs in flight, and no job starts twice. (On a build
    without drains replicas drop at once; a removed pod's 30 s job is released 3 s after
    SIGTERM (grace 5 s less the worker's 2 s margin) and runs again elsewhere: starts 2.)"""
    ns, q = operator, "drain"
    ids, before = grow_to_three(kube, tools, ns, redis, q)
    watch = Watch()
    wait_for(
        "the backlog to fall and the fleet to shrink to 1",
        lambda: finished(kube, ns, q, redis.url, ids, watch),
        300,
        0.3,
    )
    after = pods(kube, ns, q)
    assert_nothing_interrupted(redis.url, q, ids)
    assert watch.busy_drained >= 1  # a pod was drained while it held a 30 s job
    assert before - after == watch.drained  # the ReplicaSet removed exactly the drained pods
    status = get_queue(kube, ns, q)["status"]
    assert status["lastDrain"]["result"] == "Drained"
    assert status["drainingPods"] == 0
    assert not any(w.draining for w in live_workers(kube, ns, q, redis.url))


def test_an_operator_restart_during_a_drain_resumes_it(
    kube: Kube,
    tools: Tools,
    operator: str,
    redis: RedisServer,
) -> None:
    ns, q = operator, "resume"
    ids, before = grow_to_three(kube, tools, ns, redis, q)
    watch = Watch()
    wait_for("a drain of a busy pod", until_drained_busy(kube, ns, q, redis.url, watch), 180, 0.3)
    old = kill_operator(kube, ns)
    wait_for(
        "the drain to finish under a new operator",
        lambda: finished(kube, ns, q, redis.url, ids, watch),
        300,
        0.3,
    )
    new = operator_pods(kube, ns)
    assert new and not new & old
    assert_nothing_interrupted(redis.url, q, ids)
    assert before - pods(kube, ns, q) == watch.drained
    assert not any(w.draining for w in live_workers(kube, ns, q, redis.url))  # none left drained


def test_a_scale_up_during_a_drain_cancels_it(
    kube: Kube,
    tools: Tools,
    operator: str,
    redis: RedisServer,
) -> None:
    ns, q = operator, "cancel"
    ids, _ = grow_to_three(kube, tools, ns, redis, q)
    watch = Watch()
    wait_for("a drain of a busy pod", until_drained_busy(kube, ns, q, redis.url, watch), 180, 0.3)
    more = enqueue_mix(redis.url, q, shorts=40)  # backlog 43: 3 replicas wanted again

    def cancelled() -> bool:
        status = get_queue(kube, ns, q).get("status") or {}
        last = status.get("lastDrain") or {}
        return not status.get("drain") and last.get("result") == "Cancelled"

    wait_for("the drain to be cancelled", cancelled, 60)
    assert replicas(kube, ns, q) == 3
    # The workers of the drained pods claim again: none of them reports draining, and the
    # new jobs run on them too.
    assert not any(w.draining for w in live_workers(kube, ns, q, redis.url))

    def drained_pod_works() -> bool:
        conn = redis_sync.Redis.from_url(redis.url, decode_responses=True)
        try:
            hosts = {conn.hget(f"jf:{{{q}}}:job:{i}", "worker") or "" for i in more}
        finally:
            conn.close()
        return any(h.split(":", 1)[0] in watch.drained for h in hosts)

    wait_for("a formerly drained pod to claim again", drained_pod_works, 60, 0.3)
    events = json.loads(
        client.EventsV1Api(kube.api_client).list_namespaced_event(ns, _preload_content=False).data
    )["items"]
    assert any(e.get("reason") == "DrainCancelled" for e in events)
    assert all(n == 1 for n in starts(redis.url, q).values())  # nothing ran twice so far
    assert set(ids + more) >= set(starts(redis.url, q))


@pytest.mark.parametrize("drain_timeout", [0, 600], ids=["deletion-cost-only", "drained"])
def test_the_pod_removed_is_the_idle_one(
    kube: Kube,
    tools: Tools,
    operator: str,
    redis: RedisServer,
    drain_timeout: int,
) -> None:
    """The scale-in's choice of pod, made by the real ReplicaSet controller: with drains off
    only `pod-deletion-cost` (= jobs in flight) steers it, with drains on the drained pod
    goes. Either way the pod holding a 30 s job stays and the job keeps running."""
    ns, q = operator, "rank"

    def body(min_replicas: int) -> dict[str, Any]:
        return queue_body(
            q,
            redis,
            concurrency=1,
            worker={"terminationGracePeriodSeconds": 5},
            autoscaling={
                "minReplicas": min_replicas,
                "maxReplicas": 2,
                "targetBacklogPerReplica": 1,
                "scaleDown": {"stabilizationWindowSeconds": 0},
                "scaleIn": {"drainTimeoutSeconds": drain_timeout},
            },
        )

    apply(tools, ns, body(2))
    wait_for("two workers", lambda: len(workers(redis.url, q)) == 2, 120)
    [job] = enqueue_mix(redis.url, q, shorts=0, longs=1)

    def busy_pod() -> str | None:
        held = [w.hostname for w in workers(redis.url, q).values() if w.in_flight]
        return held[0] if held else None

    busy = wait_for("a pod to take the long job", busy_pod, 60)
    apply(tools, ns, body(1))
    wait_for(
        "the fleet to shrink to 1",
        lambda: replicas(kube, ns, q) == 1 and len(pods(kube, ns, q)) == 1,
        120,
        0.3,
    )
    assert pods(kube, ns, q) == {busy}
    conn = redis_sync.Redis.from_url(redis.url, decode_responses=True)
    try:
        h = conn.hgetall(f"jf:{{{q}}}:job:{job}")
    finally:
        conn.close()
    assert (h["state"], h.get("releases", "0")) == ("active", "0")
    assert h["worker"].split(":", 1)[0] == busy


def test_a_drain_past_its_timeout_falls_back_to_the_grace_period(
    kube: Kube, tools: Tools, operator: str, redis: RedisServer
) -> None:
    """drainTimeoutSeconds shorter than the job: a Warning event and the status say so,
    replicas drop anyway, and the removed pod gives its job back at SIGTERM (counted as a
    release on the job, not as an attempt)."""
    ns, q = operator, "late"

    def body(min_replicas: int) -> dict[str, Any]:
        return queue_body(
            q,
            redis,
            concurrency=1,
            worker={"terminationGracePeriodSeconds": 5},
            autoscaling={
                "minReplicas": min_replicas,
                "maxReplicas": 2,
                "targetBacklogPerReplica": 2,
                "scaleDown": {"stabilizationWindowSeconds": 0},
                "scaleIn": {"drainTimeoutSeconds": 3},
            },
        )

    apply(tools, ns, body(2))
    wait_for("two workers", lambda: len(workers(redis.url, q)) == 2, 120)
    ids = enqueue_mix(redis.url, q, shorts=0, longs=2)
    wait_for(
        "both pods busy",
        lambda: sorted(w.in_flight for w in workers(redis.url, q).values()) == [1, 1],
        60,
    )
    apply(tools, ns, body(1))

    def timed_out() -> dict[str, Any] | None:
        last = (get_queue(kube, ns, q).get("status") or {}).get("lastDrain") or {}
        return last if last.get("result") == "TimedOut" else None

    last = wait_for("the drain to time out", timed_out, 60)
    assert "timed out after 3s with 1 job in flight" in last["message"]
    wait_for("the fleet to shrink to 1", lambda: replicas(kube, ns, q) == 1, 30)
    events = json.loads(
        client.EventsV1Api(kube.api_client).list_namespaced_event(ns, _preload_content=False).data
    )["items"]
    assert any(e.get("reason") == "DrainTimedOut" and e.get("type") == "Warning" for e in events)

    def released() -> bool:
        conn = redis_sync.Redis.from_url(redis.url, decode_responses=True)
        try:
            return any(conn.hget(f"jf:{{{q}}}:job:{i}", "releases") == "1" for i in ids)
        finally:
            conn.close()

    wait_for("the removed pod to give its job back at SIGTERM", released, 60)


def test_a_pod_of_two_worker_processes_is_drained_whole(
    kube: Kube,
    tools: Tools,
    operator: str,
    redis: RedisServer,
) -> None:
    """`worker.processes: 2`: each pod runs a supervisor and two workers (two worker ids of
    one hostname); a pod carries concurrency x processes = 2 of backlog by default. 2 -> 1
    as the short jobs finish: every worker of the pod removed is drained, and no job, the
    30 s ones included, starts twice."""
    ns, q = operator, "twoprocs"
    body = queue_body(
        q,
        redis,
        concurrency=1,
        worker={"terminationGracePeriodSeconds": 5, "processes": 2},
        autoscaling={
            "minReplicas": 1,
            "maxReplicas": 2,
            "scaleDown": {"stabilizationWindowSeconds": 0},
            "scaleIn": {"drainTimeoutSeconds": 120},
        },
    )
    apply(tools, ns, body)
    wait_for("the first pod's two workers", lambda: len(workers(redis.url, q)) == 2, 120)
    deployment = kube.apps.read_namespaced_deployment(f"{q}-jobfleet", ns)
    command = deployment.spec.template.spec.containers[0].command
    assert command == ["jobfleet", "worker", "--processes", "2"]
    ids = enqueue_mix(redis.url, q, shorts=6, longs=2)
    wait_for("two pods of two workers", lambda: len(workers(redis.url, q)) == 4, 120)
    by_pod: dict[str, int] = {}
    for w in workers(redis.url, q).values():
        by_pod[w.hostname] = by_pod.get(w.hostname, 0) + 1
    assert sorted(by_pod.values()) == [2, 2]
    watch = Watch()
    wait_for(
        "the backlog to fall and the fleet to shrink to 1",
        lambda: finished(kube, ns, q, redis.url, ids, watch),
        300,
        0.3,
    )
    assert_nothing_interrupted(redis.url, q, ids)
    assert len(watch.drained) == 1
    assert (get_queue(kube, ns, q)["status"])["lastDrain"]["result"] == "Drained"
    assert len(live_workers(kube, ns, q, redis.url)) == 2
