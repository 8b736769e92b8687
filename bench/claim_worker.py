"""The worker of bench/claim_instructions.py: the `redis` body (one INCR on a second
redis-server) at a given concurrency, under a given claim-sizing policy.

    claim_worker.py --concurrency 10 [--policy tree|half|all|busy]

`tree` leaves the worker as the checkout under test has it; the others set it (on a
checkout whose Slots has `most`): `half`, a claim takes at most half the slots (jobfleet up
to this change); `all`, every free slot; `busy`, every free slot while a job still runs,
half when none does (jobfleet from this change). READY once the first
claim is back; REPORT (claims, completed) at SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import bodies_jobs
from jf_worker import bench_settings, run_reporting
from jobfleet import Registry
from jobfleet.settings import QueueSettings
from jobfleet.slots import Slots
from jobfleet.worker import Worker

POLICIES = ("tree", "half", "all", "busy")


def set_policy(slots: Slots, policy: str, batch_size: int) -> None:
    """Size the claims of `slots` by `policy` (bench only: the worker has one rule)."""
    half = min(batch_size, max(1, (slots.concurrency + 1) // 2))
    whole = min(batch_size, slots.concurrency)
    # `most` caps a claim while jobs run, `per_claim` while none does (and the waker's).
    slots.per_claim, slots.most = {"half": (half, half), "all": (whole, whole)}.get(
        policy, (half, whole)
    )


async def serve(concurrency: int, policy: str) -> dict[str, Any]:
    body, close = await bodies_jobs.make("redis", concurrency)
    await bodies_jobs.warm(body, concurrency)
    registry = Registry()

    @registry.handler("body")
    async def run_body(job: object) -> None:
        await body()

    settings = bench_settings(QueueSettings(name="bench", concurrency=concurrency))
    worker = Worker(settings, registry)
    if policy != "tree":
        set_policy(worker.slots, policy, settings.batch_size)
    report = await run_reporting(worker)
    await close()
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--policy", choices=POLICIES, default="tree")
    args = p.parse_args()
    print("REPORT " + json.dumps(asyncio.run(serve(args.concurrency, args.policy))), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
