#!/usr/bin/env bash
# Benchmarks (not tests): jobfleet, BullMQ and Dramatiq, same protocol, fresh redis-server each.
#   bench/run.sh            3 interleaved rounds, medians rendered into bench/RESULTS.md
#   bench/run.sh profile    cProfile of the jobfleet worker + Redis commandstats/slowlog/latency
#   bench/run.sh lateness   delayed jobs and retries: handler start - run_at (jobfleet only)
#   bench/run.sh processes  --processes 2 against 1: CPU-bound 200 µs body, ABBA x BENCH_ROUNDS
#   bench/run.sh admin      the admin API: HTTP enqueue, stats of 100 queues, a deep page (bench/admin.py)
#   bench/run.sh single     one-job enqueue, one at a time and 100 concurrent: jobfleet and BullMQ
#                           (BENCH_SYSTEMS="jobfleet-uvloop": also jobfleet's caller on uvloop)
#   bench/run.sh bodies     real job bodies (Redis call, HTTP GET, 1 ms sleep, 200 µs CPU) at
#                           concurrency 1/10/50: jobfleet and BullMQ (bench/bodies.py)
#   bench/run.sh shards     one partitioned queue on 1, 2, 3 Cluster primaries: jobs/s, Redis CPU per shard (bench/shards.py)
#   bench/run.sh groups     job groups: drain with 1-10,000 groups, claim cost vs groups (bench/groups.py)
# Env: BENCH_ROUNDS (3), BENCH_JOBS (20000), BENCH_LATENCY_JOBS (1000),
#      BENCH_SHARD_PARTITIONS (6), BENCH_SHARD_PROCESSES (2): the shards mode's K and workers,
#      BENCH_PROCESSES_CONCURRENCY (50): the processes mode's worker concurrency,
#      BENCH_WAIT_QUIET (total seconds to wait for load < 1 and no Go build; default 0).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PEERS=bench/.venv-peers
OUT=bench/.out
mkdir -p "$OUT"

command -v redis-server >/dev/null || { echo "redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
command -v node >/dev/null || { echo "node (20+) is missing" >&2; exit 1; }
[ -x "$PY" ] || { echo "no project venv: run 'make venv' first" >&2; exit 1; }

setup_peers() {
  if [ ! -d bench/node_modules/bullmq ]; then
    (cd bench && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [ ! -x "$PEERS/bin/dramatiq" ]; then
    python3 -m venv "$PEERS"
    "$PEERS/bin/pip" install -q -r bench/requirements-peers.txt
  fi
}

busy() {  # prints why the machine is not quiet, or nothing
  local load compiles
  load=$(cut -d' ' -f1 /proc/loadavg)
  compiles=$(pgrep -fc '(^go build|/compile )' || true)
  if awk -v l="$load" 'BEGIN{exit !(l >= 1)}' || [ "$compiles" -gt 0 ]; then
    echo "load $load, $compiles Go compile processes"
  fi
}

QUIET_DEADLINE=$((SECONDS + ${BENCH_WAIT_QUIET:-0}))  # one budget for the whole run
BENCH_QUIET_UNTIL=$(($(date +%s) + ${BENCH_WAIT_QUIET:-0}))  # run_one.py: other work < 0.5 core
export BENCH_QUIET_UNTIL
wait_quiet() {
  local why
  while why=$(busy) && [ -n "$why" ]; do
    if [ "$SECONDS" -ge "$QUIET_DEADLINE" ]; then
      echo "machine not quiet ($why): measuring anyway, RESULTS.md will say so" >&2
      return
    fi
    echo "waiting for a quiet machine ($why)" >&2
    sleep 15
  done
}

if [ "${1:-}" = "profile" ]; then
  exec "$PY" bench/run_one.py "$OUT/profile.jsonl" "$PY" bench/profile_jobfleet.py
fi
if [ "${1:-}" = "admin" ]; then
  # hey, a Go HTTP load generator, pinned and cached like the e2e tools (output in a log).
  HEY_VERSION=v0.1.4
  BENCH_HEY="$HOME/.cache/jobfleet/hey-$HEY_VERSION/hey"
  if [ ! -x "$BENCH_HEY" ] && command -v go >/dev/null; then
    echo "building hey $HEY_VERSION (log: $OUT/hey-build.log)" >&2
    GOBIN="$(dirname "$BENCH_HEY")" go install "github.com/rakyll/hey@$HEY_VERSION" >"$OUT/hey-build.log" 2>&1 ||
      echo "hey did not build (see $OUT/hey-build.log): only the Python load generator runs" >&2
  fi
  export BENCH_HEY
  wait_quiet
  exec "$PY" bench/run_one.py "$OUT/admin-$(date -u +%Y%m%dT%H%M%SZ).jsonl" "$PY" bench/admin.py
fi
if [ "${1:-}" = "single" ]; then
  # One-job enqueue, one call at a time and 100 concurrent callers: jobfleet and BullMQ's add.
  setup_peers
  results="$OUT/single-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
  for round in $(seq 1 "${BENCH_ROUNDS:-3}"); do
    wait_quiet
    "$PY" bench/run_one.py "$results" "$PY" bench/single_enqueue.py >/dev/null
    "$PY" bench/run_one.py "$results" node bench/bullmq_single.mjs >/dev/null
    case " ${BENCH_SYSTEMS:-} " in  # the caller on uvloop too (the bench brings uvloop)
      *" jobfleet-uvloop "*)
        "$PY" -c "import uvloop" 2>/dev/null || .venv/bin/pip install -q uvloop
        BENCH_LOOP=uvloop "$PY" bench/run_one.py "$results" "$PY" bench/single_enqueue.py >/dev/null ;;
    esac
  done
  "$PY" bench/single_report.py "$results"
  echo "raw results: $results" >&2
  exit 0
fi
if [ "${1:-}" = "bodies" ]; then
  setup_peers
  wait_quiet
  case " ${BENCH_SYSTEMS:-} " in
    *" jobfleet-uvloop "*)
      # uvloop is no dependency of the project: the bench brings it into the venv it runs in.
      "$PY" -c "import uvloop" 2>/dev/null || .venv/bin/pip install -q uvloop ;;
  esac
  exec "$PY" bench/bodies.py
fi
if [ "${1:-}" = "groups" ]; then
  wait_quiet
  exec "$PY" bench/groups.py both "${BENCH_ROUNDS:-3}"
fi
if [ "${1:-}" = "lateness" ]; then
  wait_quiet
  exec "$PY" bench/run_one.py "$OUT/lateness-$(date -u +%Y%m%dT%H%M%SZ).jsonl" "$PY" bench/lateness.py
fi

if [ "${1:-}" = "shards" ]; then
  # Per round S = 1 2 3 3 2 1 primaries (ABBA: drift in the machine's other load hits every S
  # alike) with K partitions, and at both ends one unpartitioned queue on one primary (the
  # reference: what K partitions cost on one server). Each run forms its own cluster
  # (bench/shard_cluster.py).
  k="${BENCH_SHARD_PARTITIONS:-6}"
  out="$OUT/shards-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
  for _ in $(seq "${BENCH_ROUNDS:-3}"); do
    for run in 1:1 1:"$k" 2:"$k" 3:"$k" 3:"$k" 2:"$k" 1:"$k" 1:1; do
      wait_quiet
      echo "== shards ${run%%:*}, partitions ${run##*:}: $(uptime | sed 's/.*load/load/')" >&2
      "$PY" bench/shards.py --shards "${run%%:*}" --partitions "${run##*:}" \
        --processes "${BENCH_SHARD_PROCESSES:-2}" >>"$out"
    done
  done
  "$PY" bench/shards_report.py "$out"
  echo "raw results: $out" >&2
  exit 0
fi

if [ "${1:-}" = "processes" ]; then
  # ABBA rounds (1 2 2 1): drift in the machine's other load hits both sides alike.
  out="$OUT/processes-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
  for _ in $(seq "${BENCH_ROUNDS:-3}"); do
    for n in 1 2 2 1; do
      wait_quiet
      uptime >&2
      "$PY" bench/run_one.py "$out" "$PY" bench/processes.py --processes "$n" >/dev/null
    done
  done
  exec "$PY" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for i in range(0, len(rows) - 3, 4):
    one = [r["jobs_per_s"] for r in rows[i : i + 4] if r["processes"] == 1]
    two = [r["jobs_per_s"] for r in rows[i : i + 4] if r["processes"] == 2]
    busy = max(r["others_cores_during"] for r in rows[i : i + 4])
    ratio = statistics.mean(two) / statistics.mean(one)
    cpu = [(r["processes"], r.get("worker_cpu_us"), r.get("redis_cpu_us")) for r in rows[i : i + 4]]
    print(f"round {i // 4 + 1}: N=1 {one} N=2 {two} jobs/s, ratio {ratio:.2f}, others {busy} cores")
    print(f"  (N, worker CPU µs/job, Redis CPU µs/job): {cpu}")
PY
fi

setup_peers
results="$OUT/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
for round in $(seq 1 "${BENCH_ROUNDS:-3}"); do
  wait_quiet  # once per round: our own runs push the 1-min load average up for a minute
  for system in jobfleet bullmq dramatiq; do
    echo "== round $round: $system ($(uptime | sed 's/.*load/load/'))" >&2
    case $system in
      jobfleet) driver=("$PY" bench/bench_jobfleet.py) ;;
      bullmq) driver=(node bench/bullmq_bench.mjs) ;;
      dramatiq) driver=("$PEERS/bin/python" bench/dramatiq_bench.py) ;;
    esac
    "$PY" bench/run_one.py "$results" "${driver[@]}" >/dev/null
  done
done
"$PY" bench/report.py "$results" "${BENCH_COMMAND:-make bench}"
echo "raw results: $results" >&2
