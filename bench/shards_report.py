"""Medians of bench/shards.py runs per shard count, as the table in bench/RESULTS.md."""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per shard count: medians over its runs (each shard's CPU by position)."""
    out = []
    for s, k in sorted({(r["shards"], r["partitions"]) for r in rows}):
        runs = [r for r in rows if (r["shards"], r["partitions"]) == (s, k)]
        per_shard = [median([r["redis_cpu_us_per_shard"][i] for r in runs]) for i in range(s)]
        redis_us, worker_us = (
            median([r["redis_cpu_us"] for r in runs]),
            median([r["worker_cpu_us"] for r in runs]),
        )
        out.append(
            {
                "shards": s,
                "partitions": k,
                "runs": len(runs),
                "jobs_per_s": round(statistics.median([r["jobs_per_s"] for r in runs])),
                "redis_cpu_us_per_shard": per_shard,
                "redis_cpu_us": redis_us,
                "worker_cpu_us": worker_us,
                "busiest_redis_cores": median([max(r["redis_cores"]) for r in runs]),
                "ours_cores": median([r["ours_cores"] for r in runs]),
                "others_cores": median([r["others_cores_during"] for r in runs]),
                "load1": median([r["load1_before"] for r in runs]),
                # What one logical queue reaches when cores are not the limit: each primary
                # is one core, so S / (Redis µs per job) jobs/s, with this many worker cores.
                "redis_bound_jobs_per_s": round(s * 1e6 / max(per_shard)),
                "worker_cores_at_that_rate": round(s * 1e6 / max(per_shard) * worker_us / 1e6, 1),
            }
        )
    return out


COLUMNS = (
    ("shards", "shards"),
    ("partitions", "K"),
    ("runs", "runs"),
    ("jobs_per_s", "jobs/s"),
    ("redis_cpu_us_per_shard", "Redis CPU µs/job, each shard"),
    ("redis_cpu_us", "Redis µs/job, all shards"),
    ("worker_cpu_us", "worker µs/job"),
    ("busiest_redis_cores", "busiest Redis (cores)"),
    ("ours_cores", "ours (cores)"),
    ("others_cores", "others (cores)"),
    ("redis_bound_jobs_per_s", "Redis-bound jobs/s"),
    ("worker_cores_at_that_rate", "worker cores for it"),
)


def cell(value: Any) -> str:
    return " / ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def main() -> int:
    with open(sys.argv[1]) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    table = summary(rows)
    print("| " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for t in table:
        print("| " + " | ".join(cell(t[key]) for key, _ in COLUMNS) + " |")
    print(json.dumps(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
