"""The table of `bench/run.sh bodies`: medians per body, concurrency and system, in Markdown.

bodies_report.py bench/.out/bodies-*.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

FIELDS = ("jobs_per_s", "worker_cpu_us", "framework_cpu_us", "handler_cpu_us", "redis_cpu_us")


def label(row: dict[str, Any]) -> str:
    return "jobfleet (uvloop)" if row.get("loop") == "uvloop" else str(row["system"])


def main() -> int:
    lines = [line for path in sys.argv[1:] for line in Path(path).read_text().splitlines()]
    rows = [json.loads(line) for line in lines]
    runs: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        runs[(row["body"], int(row["concurrency"]), label(row))].append(row)
    systems = sorted({s for _, _, s in runs}, key=lambda s: (s != "jobfleet", s))
    bodies = list(dict.fromkeys(row["body"] for row in rows))
    levels = sorted({c for _, c, _ in runs})
    print(
        "| body | conc. | system | jobs/s (runs) | vs BullMQ | worker CPU µs/job "
        "(framework + handler) | Redis CPU µs/job |"
    )
    print("|---|--:|---|--:|--:|--:|--:|")
    for body in bodies:
        for c in levels:
            med: dict[str, dict[str, float]] = {}
            for s in systems:
                got = runs.get((body, c, s))
                if got:
                    med[s] = {f: statistics.median(float(r[f]) for r in got) for f in FIELDS}
            for s, m in med.items():
                rates = " / ".join(str(r["jobs_per_s"]) for r in runs[(body, c, s)])
                ratio = ""
                if s != "bullmq" and "bullmq" in med:
                    ratio = f"{m['jobs_per_s'] / med['bullmq']['jobs_per_s']:.2f}x"
                print(
                    f"| {body} | {c} | {s} | {m['jobs_per_s']:,.0f} ({rates}) | {ratio} | "
                    f"{m['worker_cpu_us']:.0f} ({m['framework_cpu_us']:.0f} + "
                    f"{m['handler_cpu_us']:.0f}) | {m['redis_cpu_us']:.0f} |"
                )
    loads = [r["load1_before"] for r in rows]
    others = [r["others_cores_during"] for r in rows]
    print(
        f"\n{len(rows)} runs, {rows[0]['at']} - {rows[-1]['at']}; load (1 min) before a run "
        f"{min(loads):.2f}-{max(loads):.2f}; other work during a run {min(others):.2f}-"
        f"{max(others):.2f} cores."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
