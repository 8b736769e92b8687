"""Medians of `bench/run.sh single` results (JSONL), as the Markdown table of bench/RESULTS.md."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROWS = (
    ("one call at a time, jobs/s", "seq_per_s", True),
    ("one call at a time, p50 latency (ms)", "seq_p50_ms", False),
    ("one call at a time, caller CPU per job (µs)", "seq_client_cpu_us", False),
    ("one call at a time, Redis CPU per job (µs)", "seq_redis_cpu_us", False),
    ("100 concurrent callers, jobs/s", "conc_per_s", True),
    ("100 concurrent callers, caller CPU per job (µs)", "conc_client_cpu_us", False),
    ("100 concurrent callers, Redis CPU per job (µs)", "conc_redis_cpu_us", False),
)


def main() -> None:
    rows = [json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines() if line]
    by: dict[str, list[dict[str, float]]] = {}
    for row in rows:
        by.setdefault(str(row["system"]), []).append(row)
    bq = by.get("bullmq", [])
    for system in (s for s in by if s != "bullmq"):  # jobfleet, then jobfleet-uvloop if run
        jf = by[system]
        runs_of = f"runs ({system}; BullMQ)"
        head = ("single enqueue, medians", system, "BullMQ", "advantage", runs_of)
        print("| " + " | ".join(head) + " |")
        print("|---|--:|--:|--:|---|")
        for title, key, higher in ROWS:
            a = statistics.median(r[key] for r in jf)
            b = statistics.median(r[key] for r in bq)
            ratio = a / b if higher else b / a
            runs = " / ".join(str(r[key]) for r in jf) + "; " + " / ".join(str(r[key]) for r in bq)
            print(f"| {title} | {a:,.3g} | {b:,.3g} | {ratio:.2f}x | {runs} |")
        print()
    others = [r.get("others_cores_during", 0.0) for r in rows]
    print(f"Other work during the runs: {min(others)}-{max(others)} cores of 2.")


if __name__ == "__main__":
    main()
