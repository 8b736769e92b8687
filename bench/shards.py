"""Drain of one partitioned queue on 1, 2 and 3 Redis Cluster primaries (issue #13 part 4).

One run per invocation, on a fresh cluster of `--shards` primaries (bench/shard_cluster.py:
no replicas, every partition's slot placed so that the K partitions spread K/S per shard,
checked against CLUSTER SLOTS before measuring). `jobfleet worker --processes P` serves the
queue; once its P workers are registered the queue is paused, N no-op jobs are enqueued
round robin (N/K per partition), and the drain is timed from resume to the last completion.
Measured over the drain window: jobs/s, each shard's Redis CPU (INFO cpu, user + sys) per
job it served, the worker processes' CPU per job, and the machine's other work in cores.
`bench/run.sh shards` runs S = 1 2 3 3 2 1 for BENCH_ROUNDS rounds; RESULTS.md has figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jobfleet
from common import (
    N_JOBS,
    busy_cores,
    callgrind_control,
    callgrind_total,
    cpu_sample,
    tree_cpu,
)
from jobfleet.keys import partition_names
from redis.crc import key_slot
from shard_cluster import Shards, even_owner

QUEUE = "shards"
CONCURRENCY = 50
ENQUEUE_BATCH = 1000
WORKER = [sys.executable, "-m", "jobfleet", "--log-level", "WARNING", "worker"]
IDLE_WINDOW = 2.0  # seconds of a paused queue whose Redis CPU is measured before the drain
POLL = 0.1  # seconds between two inspects of the drain (their Redis CPU is inside the figure)


def tag_slot(queue: str) -> int:
    """The slot of a queue's keys: its hash tag is the whole (partition) name."""
    return int(key_slot(queue.encode()))


def placement(shards: int, partitions: int) -> dict[int, int]:
    """Partition k's slot -> shard k mod S: K/S partitions on each shard."""
    pinned: dict[int, int] = {}
    for k, name in enumerate(partition_names(QUEUE, partitions)):
        slot = tag_slot(name)
        if pinned.setdefault(slot, k % shards) != k % shards:
            raise SystemExit(f"partitions of {QUEUE!r} share slot {slot}: pick another name")
    return pinned


def worker_settings(url: str, partitions: int) -> str:
    settings = {
        "redis_url": url,
        "http_port": None,
        "handlers": ["processes_jobs"],
        "queue": {"name": QUEUE, "concurrency": CONCURRENCY, "partitions": partitions},
    }
    return json.dumps(settings)


def run(
    shards: int, partitions: int, processes: int, jobs: int, callgrind: bool = False
) -> dict[str, object]:
    if partitions % shards:
        raise SystemExit(f"--partitions {partitions} is not a multiple of --shards {shards}")
    pinned = placement(shards, partitions)
    load1 = os.getloadavg()[0]
    with Shards(shards, even_owner(shards, pinned), callgrind=callgrind) as cluster:
        served = [cluster.serving(slot) for slot in pinned]
        per_shard = [served.count(s) for s in range(shards)]
        if served != list(pinned.values()) or len(set(per_shard)) != 1:
            raise SystemExit(f"partitions are not spread evenly: {per_shard} per shard")
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBFLEET_")}
        env |= {
            "JOBFLEET_SETTINGS": worker_settings(cluster.url, partitions),
            "BENCH_CPU_SECONDS": "0",  # processes_jobs' "cpu" handler with no body: a no-op
        }
        worker = subprocess.Popen(
            [*WORKER, "--processes", str(processes)],
            cwd=Path(__file__).parent,
            env=env,
        )
        try:
            with jobfleet.SyncClient(cluster.url, queue=QUEUE) as starting:
                deadline = time.monotonic() + 120
                while len(starting.workers()) < processes:
                    if worker.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the workers did not start")
                    time.sleep(0.05)
            # A fresh client: the one above read the queue before any worker recorded K and
            # trusts that reading for a while (jobfleet.client.PARTITIONS_TTL).
            with jobfleet.SyncClient(cluster.url, queue=QUEUE) as client:
                if client.partitions() != partitions:
                    raise RuntimeError(f"the workers recorded {client.partitions()} partitions")
                client.pause()
                for start in range(0, jobs, ENQUEUE_BATCH):
                    count = min(ENQUEUE_BATCH, jobs - start)
                    client.enqueue_many([{"name": "cpu"}] * count)
                waiting = client.inspect().waiting
                if waiting != jobs:
                    raise RuntimeError(f"{waiting} jobs waiting, {jobs} enqueued")
                # What each server spends with the workers idle (paused: their claims come
                # back empty, the cluster bus, serverCron), per second: beside the drain's
                # figure, it tells a fixed cost from a per-job one.
                idle0, t_idle = [cluster.cpu(s) for s in range(shards)], time.perf_counter()
                time.sleep(IDLE_WINDOW)
                idle_s = time.perf_counter() - t_idle
                redis0 = [cluster.cpu(s) for s in range(shards)]
                idle = [(c1 - c0) / idle_s for c0, c1 in zip(idle0, redis0, strict=True)]
                for pid in cluster.pids() if callgrind else []:
                    callgrind_control("-z", pid)
                worker0, machine0, driver0 = tree_cpu(worker.pid), cpu_sample(), time.process_time()
                t0 = time.perf_counter()
                client.resume()
                polls = 0
                while client.inspect().completed_total < jobs:
                    polls += 1
                    time.sleep(POLL)
                seconds = time.perf_counter() - t0
                machine = busy_cores(machine0, cpu_sample())
                worker_s = tree_cpu(worker.pid) - worker0
                driver_s = time.process_time() - driver0
                redis_s = [cluster.cpu(s) - c0 for s, c0 in enumerate(redis0)]
                instructions = []
                for shard, pid in enumerate(cluster.pids() if callgrind else []):
                    callgrind_control("-d", pid)
                    instructions.append(callgrind_total(cluster.callgrind_out(shard)))
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=120)
    ours = (worker_s + sum(redis_s)) / seconds
    shard_jobs = [jobs * n // partitions for n in per_shard]  # round robin: N/K per partition
    return {
        "bench": "shards",
        "shards": shards,
        "partitions": partitions,
        "processes": processes,
        "concurrency": CONCURRENCY,
        "jobs": jobs,
        "seconds": round(seconds, 3),
        "jobs_per_s": round(jobs / seconds),
        # Each shard's CPU over the jobs of its own partitions: the cost of a job where it
        # lives, which must not grow with the number of shards.
        "redis_cpu_us_per_shard": [
            round(s * 1e6 / n, 1) for s, n in zip(redis_s, shard_jobs, strict=True)
        ],
        "redis_cpu_us": round(sum(redis_s) * 1e6 / jobs, 1),
        # Under callgrind: instructions each server ran per job of its partitions (the
        # machine's load does not move these; the seconds above are then valgrind's).
        "callgrind": callgrind,
        "redis_instructions_per_shard": [
            round(i / n) for i, n in zip(instructions, shard_jobs, strict=False)
        ],
        "redis_idle_cores": [round(c, 3) for c in idle],
        # The drain's Redis CPU less what the same time costs idle: the per-job part.
        "redis_net_us_per_shard": [
            round((s - i * seconds) * 1e6 / n, 1)
            for s, i, n in zip(redis_s, idle, shard_jobs, strict=True)
        ],
        "worker_cpu_us": round(worker_s * 1e6 / jobs, 1),
        "redis_cores": [round(s / seconds, 2) for s in redis_s],
        "worker_cores": round(worker_s / seconds, 2),
        "ours_cores": round(ours, 2),
        # The machine's other work (the other engineers' tests): busy cores less ours and
        # this driver's own polling.
        "others_cores_during": round(max(0.0, machine - ours - driver_s / seconds), 2),
        "inspect_polls": polls,
        "load1_before": load1,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--jobs", type=int, default=N_JOBS)
    p.add_argument("--callgrind", action="store_true", help="count Redis instructions instead")
    args = p.parse_args()
    result = run(args.shards, args.partitions, args.processes, args.jobs, args.callgrind)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
