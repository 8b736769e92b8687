"""Render the medians of a results JSONL file into bench/RESULTS.md, between the figure markers."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
SYSTEMS = ("jobfleet", "bullmq", "dramatiq")
NAMES = {"jobfleet": "jobfleet", "bullmq": "BullMQ", "dramatiq": "Dramatiq"}


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


DISTURBED = 0.5  # cores of other work during a run that mark it with *


def runs(rows: list[dict[str, Any]], key: str, digits: int) -> str:
    def one(r: dict[str, Any]) -> str:
        star = "*" if r.get("others_cores_during", 0.0) >= DISTURBED else ""
        return fmt(r.get(key), digits) + star

    return " / ".join(one(r) for r in rows)


def table(
    by: dict[str, list[dict[str, Any]]],
    title: str,
    key: str,
    digits: int,
    target: tuple[str, float] | None,
    higher_is_better: bool,
    extra: tuple[str, str] | None = None,
) -> list[str]:
    """One metric: each system's median and runs, the ratio against jobfleet, the target."""
    base = median(by.get("jobfleet", []), key)
    head = "| system | median | runs | jobfleet advantage |"
    sep = "|---|--:|--:|--:|"
    if extra:
        head += f" {extra[1]} |"
        sep += "--:|"
    lines = [f"**{title}**", "", head, sep]
    for system in SYSTEMS:
        rows = by.get(system)
        if not rows:
            continue
        m = median(rows, key)
        ratio = "-"
        # Per round (the systems ran back to back), then the median: load changes cancel out.
        pairs = [
            (j.get(key), r.get(key)) for j, r in zip(by.get("jobfleet", []), rows, strict=False)
        ]
        ratios = [(a / b if higher_is_better else b / a) for a, b in pairs if a and b]
        if ratios and system != "jobfleet":
            ratio = f"{statistics.median(ratios):.2f}x"
        line = f"| {NAMES[system]} | {fmt(m, digits)} | {runs(rows, key, digits)} | {ratio} |"
        if extra:
            line += f" {fmt(median(rows, extra[0]), digits)} |"
        lines.append(line)
    if target and base is not None:
        op, goal = target
        met = base >= goal if op == "≥" else base <= goal
        verdict = "met" if met else "**missed**"
        lines.append("")
        lines.append(f"Target for jobfleet {op} {goal:,g}: {verdict} (median {fmt(base, digits)}).")
    lines.append("")
    return lines


def tool_versions() -> str:
    def out(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "?"

    redis_v = out(["redis-server", "--version"]).split(" v=")[-1].split(" ")[0]
    pkg = json.loads((BENCH / "package-lock.json").read_text())["packages"]
    bullmq = pkg.get("node_modules/bullmq", {}).get("version", "?")
    ioredis = pkg.get("node_modules/ioredis", {}).get("version", "?")
    dramatiq = out(
        [str(BENCH / ".venv-peers/bin/python"), "-c", "import dramatiq;print(dramatiq.__version__)"]
    )
    return (
        f"redis-server {redis_v}, Python {platform.python_version()}, "
        f"Node {out(['node', '--version'])}, BullMQ {bullmq} (ioredis {ioredis}), "
        f"Dramatiq {dramatiq} (redis broker)"
    )


def engine_version() -> str:
    """The worker/ code measured: its last commit, and whether the tree had changes on top."""
    repo = BENCH.parent

    def git(*args: str) -> str:
        cmd = ["git", "-C", str(repo), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("log", "-1", "--format=%h", "--", "worker")
    dirty = " plus uncommitted changes" if git("status", "--porcelain", "--", "worker") else ""
    return f"jobfleet worker/ at {commit or '?'}{dirty} (at the end of the run)"


def machine() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    import os

    return (
        f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, shared with other engineers"
    )


def render(rows: list[dict[str, Any]], command: str) -> str:
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["system"], []).append(r)
    n = rows[0]["n"]
    loads = [r["load1_before"] for r in rows]
    others = [r.get("others_cores_busy", 0.0) for r in rows]
    during = [r["others_cores_during"] for r in rows if "others_cores_during" in r] or [-1.0]
    disturbed = sum(d >= DISTURBED for d in during)
    compiles = max(max(r["go_compiles_before"], r["go_compiles_after"]) for r in rows)
    first, last = min(r["at"] for r in rows), max(r["at"] for r in rows)
    rounds = max(len(v) for v in by.values())
    round_starts = [r["load1_before"] for r in by.get(SYSTEMS[0], [])]  # first of a round
    quiet = max(round_starts or loads) < 1 and max(others) < 0.5 and compiles == 0
    quiet = quiet and disturbed == 0
    out = [
        BEGIN,
        f"Recorded {first} - {last} (UTC) by `{command}`: {rounds} rounds, systems interleaved, "
        f"{n:,} jobs per drain and enqueue, {rows[0].get('latency_n', '?')} latency jobs; "
        "each figure is the median of the rounds (the runs column lists them in order). "
        "Jobfleet advantage: jobfleet's figure over the peer's from the same round, turned so "
        "that > 1 means jobfleet is better, median over the rounds.",
        "",
        f"Machine: {machine()}. {tool_versions()}; {engine_version()}.",
        "",
        f"Load average (1 min) before each run: {min(loads):.2f} - {max(loads):.2f} (the "
        "runs before it in a round add to it); cores kept busy by other work, sampled over "
        f"1 s before each run: {min(others):.2f} - {max(others):.2f}, and during each run "
        "(all cores' busy time less our processes'): "
        + (f"{min(during):.2f} - {max(during):.2f}; " if min(during) >= 0 else "not measured; ")
        + f"{disturbed} of {len(rows)} runs had other work using ≥ {DISTURBED} core during "
        f"the run (marked * in the runs columns); Go compile processes seen: {compiles}. "
        + (
            "The machine was quiet (load < 1 at each round's start, other work < 0.5 core "
            f"before and < {DISTURBED} core during each run, no Go build)."
            if quiet
            else "**The machine was NOT quiet throughout (load ≥ 1 at a round's start, other "
            "work before or during a run, or a Go build): figures are lower than on an idle "
            "machine.**"
        ),
        "",
    ]
    out += table(by, "Bulk enqueue, jobs/s", "enqueue_per_s", 0, ("≥", 50_000), True)
    out += table(
        by,
        "Drain, jobs/s (one worker process; first job start → last job finish)",
        "drain_per_s",
        0,
        ("≥", 20_000),
        True,
        ("drain_wall_per_s", "wall jobs/s (spawn → all done)"),
    )
    out += table(
        by,
        "Pickup latency p50, ms (idle worker; enqueue call → handler start, enqueuer's clock)",
        "latency_p50_ms",
        2,
        ("≤", 1),
        False,
    )
    out += table(by, "Pickup latency p99, ms (same runs)", "latency_p99_ms", 2, ("≤", 5), False)
    jf, bull = by.get("jobfleet", []), by.get("bullmq", [])
    if jf:
        out += [
            "jobfleet's own stamps (started_at - enqueued_at, Redis clock, whole ms): p50 "
            f"{fmt(median(jf, 'latency_redis_clock_p50_ms'), 1)} ms, p99 "
            f"{fmt(median(jf, 'latency_redis_clock_p99_ms'), 1)} ms. "
            "The enqueue call alone (inside the figures above) took p50 "
            f"{fmt(median(jf, 'enqueue_call_p50_ms'), 2)} ms in jobfleet"
            + (
                f", {fmt(median(bull, 'enqueue_call_p50_ms'), 2)} ms in BullMQ; "
                "BullMQ's own stamps (processedOn - timestamp, whole ms): p50 "
                f"{fmt(median(bull, 'latency_job_stamps_p50_ms'), 1)} ms, p99 "
                f"{fmt(median(bull, 'latency_job_stamps_p99_ms'), 1)} ms."
                if bull
                else "."
            ),
            "",
        ]
    out += table(
        by,
        "Client round trips to Redis per job, enqueue (counted by the client)",
        "enqueue_round_trips_per_job",
        5,
        None,
        False,
    )
    out += table(
        by,
        "Worker round trips to Redis per job, drain (counted by the worker's engine)",
        "drain_round_trips_per_job",
        4,
        ("≤", 0.5),
        False,
    )
    out += table(
        by,
        "Redis server CPU per job, enqueue, µs (INFO cpu delta / N)",
        "enqueue_cpu_us_per_job",
        1,
        None,
        False,
    )
    out += table(
        by,
        "Redis server CPU per job, drain, µs (INFO cpu delta / N)",
        "drain_cpu_us_per_job",
        1,
        None,
        False,
    )
    out += table(
        by,
        "Redis commands executed per job, drain (incl. those inside Lua; INFO stats delta / N)",
        "drain_cmds_per_job",
        2,
        None,
        False,
    )
    out.append(END)
    return "\n".join(out)


def main() -> int:
    results, command = Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "make bench"
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    if not rows:
        print(f"no results in {results}", file=sys.stderr)
        return 1
    target = BENCH / "RESULTS.md"
    text = target.read_text() if target.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    target.write_text(head + render(rows, command) + tail)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
