"""Benchmark (issue 4, acceptance 4): backlog spike -> new replica count on the Deployment.

Not a test: it measures and records, never asserts a duration. Runs only with
`E2E_BENCH=1` (e.g. `E2E_BENCH=1 bash e2e/run.sh e2e/test_operator_bench.py -s`) and appends
its result to bench/RESULTS.md.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import time

import pytest

from .support import REPO, Kube, RedisServer, Tools, versions, wait_for
from .test_operator import (
    apply,
    enqueue,
    get_queue,
    queue_body,
    replicas,
)

pytestmark = pytest.mark.skipif(
    os.environ.get("E2E_BENCH") != "1", reason="benchmark: set E2E_BENCH=1 to run it"
)
RUNS = 5
SPIKE = 200  # jobs; target 10 per replica wants 20 > maxReplicas
RESULTS = REPO / "bench" / "RESULTS.md"


def test_scale_reaction_time(kube: Kube, tools: Tools, operator: str, redis: RedisServer) -> None:
    ns = operator
    samples: list[float] = []
    for run in range(RUNS):
        name = f"spike-{run}"
        apply(
            tools,
            ns,
            queue_body(
                name,
                redis,
                autoscaling={"minReplicas": 1, "maxReplicas": 8, "targetBacklogPerReplica": 10},
            ),
        )
        # The scaler runs once the Queue reports a status for its generation.
        wait_for(
            f"{name} to be managed",
            lambda n=name: (get_queue(kube, ns, n).get("status") or {}).get("desiredReplicas") == 1,
            120,
        )
        enqueue(redis.url, name, SPIKE, seconds=60.0)  # long jobs: the backlog stays
        start = time.monotonic()
        while (replicas(kube, ns, name) or 0) <= 1:
            if time.monotonic() - start > 120:
                pytest.fail(f"{name}: no scale-up within 120 s")
            time.sleep(0.02)
        samples.append(time.monotonic() - start)
        kube.custom.delete_namespaced_custom_object("jobfleet.dev", "v1alpha1", ns, "queues", name)
    median = statistics.median(samples)
    line = ", ".join(f"{s:.2f}" for s in samples)
    print(f"\nbacklog spike -> new replica count: median {median:.2f} s ({line})")
    pins = versions()
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(
            f"\n## Operator: backlog spike to new replica count ({dt.date.today()})\n\n"
            f"Median of {RUNS} runs: **{median:.2f} s** (runs: {line} s); target <= 3 s with "
            f"the default 2 s poll interval. A spike of {SPIKE} waiting jobs on a Queue at 1 "
            f"replica (target 10 per replica, max 8); time from the last enqueue returning to "
            f"the Deployment's `spec.replicas` changing, polled every 20 ms through the API. "
            f"The run starts right after the Queue's first status write, so the spike lands "
            f"just after a tick: close to the worst case of one full poll interval.\n"
            f"Cluster: kwok {pins.get('KWOK_VERSION')}, Kubernetes {pins.get('KUBE_VERSION')} "
            f"(real API server, pods as local processes), {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}. Reproduce: "
            f"`E2E_BENCH=1 bash e2e/run.sh e2e/test_operator_bench.py -s`.\n"
        )
