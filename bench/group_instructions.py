"""Redis instructions per drained job with G groups holding work, counted by callgrind.

    .venv/bin/python bench/group_instructions.py [JOBS]          # this checkout
    PYTHONPATH=/other/worker .venv/bin/python bench/group_instructions.py   # another version

redis-server runs under callgrind (valgrind). For G = none / 1 / 100 / 10,000, a fresh server
gets 2 x JOBS no-op jobs spread evenly over G groups (at 10,000 groups: 2 jobs a group, so
each job comes from a different group, as in `bench/groups.py drain`); its counters are zeroed,
then JOBS jobs are claimed 10 at a time straight through the engine, each claim acknowledging
the previous batch (a worker's steady state), and the counters dumped. Counts do not move with
the machine's load, so two versions compare on a shared machine where seconds do not.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from groups import _jobs
from wire import callgrind_redis, control, total  # bench/wire.py: the same protocol

JOBS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
GROUPS = (0, 1, 100, 10_000)
BATCH = 10


async def drive(url: str, groups: int, pid: int) -> None:
    from jobfleet import Client
    from jobfleet.engine import ClaimPolicy

    async with Client(url, queue="bench") as client:
        await client.enqueue_many(_jobs(max(2 * JOBS, 2 * groups), groups))
        eng = client.engine()
        policy = ClaimPolicy(
            lease_ms=600_000, worker_ttl_ms=600_000, max_attempts=3, poison_after=3
        )
        acks: list[tuple[str, str, str]] = []
        # Warm-up claims (the scripts loaded, the first claim's one-off work done).
        for i in range(3):
            got = await eng.claim(token=f"w{i}", n=BATCH, worker_id="w", policy=policy,
                                  completions=acks)  # fmt: skip
            acks = [(j.id, f"w{i}", "null") for j in got.jobs]
        control("-z", pid)
        done = 0
        i = 0
        while done < JOBS:
            token = f"t{i}"
            got = await eng.claim(token=token, n=BATCH, worker_id="w", policy=policy,
                                  completions=acks)  # fmt: skip
            done += len(got.jobs)
            acks = [(j.id, token, "null") for j in got.jobs]
            i += 1
        # The last batch's completions belong to the measured jobs too.
        await eng.claim(token="end", n=0, worker_id="w", policy=policy, completions=acks)
        control("-d", pid)


def measure(groups: int) -> float:
    server, conn, out = callgrind_redis()
    port = conn.connection_pool.connection_kwargs["port"]
    try:
        asyncio.run(drive(f"redis://127.0.0.1:{port}/0", groups, server.pid))
    finally:
        conn.shutdown(nosave=True)
        server.wait()
    return total(out) / JOBS


def main() -> None:
    for tool in ("valgrind", "callgrind_control", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (apt-get install valgrind redis-server)")
    import jobfleet

    print(f"jobfleet from {Path(jobfleet.__file__).parent}, {JOBS} jobs claimed {BATCH} a call")
    for g in GROUPS:
        label = "none" if g == 0 else f"{g:,}"
        print(f"groups {label}: {measure(g):,.0f} Redis instructions per drained job", flush=True)


if __name__ == "__main__":
    main()
