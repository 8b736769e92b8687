#!/usr/bin/env bash
# `make demo`: the main job of jobfleet on a local cluster, from nothing to a summary.
#
#   1. builds the e2e tools once (Kubernetes control plane, kwok, helm; ~10 min on a fresh
#      machine, cached in ~/.cache/jobfleet/), then brings up the local kwok cluster
#      (e2e/cluster.sh) and the harness that runs its pods as local processes (e2e/harness);
#   2. runs examples/demo.py: redis-server, helm install, the example Queues, a burst of jobs,
#      a live table while the fleets scale up and down, a summary;
#   3. tears down what it started.
#
# A cluster of this checkout that is already running (an e2e session, E2E_KEEP=1) is reused
# and left running, as is its harness. DEMO_KEEP=1 leaves everything running afterwards.
set -euo pipefail
examples="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$examples")"
cd "$repo"
run="$repo/e2e/.run"
kubeconfig="$run/kubeconfig"

say() { if [[ -t 1 ]]; then printf '\033[1m==> %s\033[0m\n' "$*"; else echo "==> $*"; fi; }
die() { echo "demo.sh: $*" >&2; exit 1; }

python="${PYTHON:-$repo/.venv/bin/python}"
[[ -x "$python" ]] || die "no virtualenv at .venv: run \`make venv\` (or \`make demo\`, which does)"
command -v redis-server >/dev/null || die "redis-server is missing: run \`make bootstrap\` (or \`make demo\`, which does)"
"$python" -c 'import jobfleet_operator, kubernetes' 2>/dev/null ||
  die "the operator extra is missing: .venv/bin/pip install -e '.[operator,dev]'"

if [[ "${E2E_CLUSTER:-kwok}" != "kwok" ]]; then
  die "the demo runs on the local kwok cluster only (E2E_CLUSTER=${E2E_CLUSTER})"
fi
export E2E_CLUSTER=kwok

# ---- 1. tools, cluster, harness -------------------------------------------------------------
if ! bash e2e/tools/build.sh --print-env | cut -d= -f2 | grep -v kind- | xargs -n1 test -x 2>/dev/null; then
  say "building the local Kubernetes tools (first run only: about 10 minutes)"
fi
bash e2e/tools/build.sh
eval "$(bash e2e/tools/build.sh --print-env)"

started_cluster=0
started_harness=""
cleanup() {
  local rc=$?
  if [[ "${DEMO_KEEP:-}" == "1" ]]; then
    say "DEMO_KEEP=1: the cluster stays up (eval \"\$(bash e2e/cluster.sh env)\"; bash e2e/cluster.sh down)"
    return "$rc"
  fi
  if [[ -n "$started_harness" ]]; then
    kill -TERM "$started_harness" 2>/dev/null || true
    wait "$started_harness" 2>/dev/null || true
  fi
  if ((started_cluster)); then
    say "stopping the cluster"
    bash e2e/cluster.sh down || true
  fi
  return "$rc"
}
trap cleanup EXIT

if [[ -f "$kubeconfig" ]] && "$TOOL_KUBECTL" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
  say "reusing the running cluster of this checkout (left running afterwards)"
else
  say "starting the local Kubernetes cluster (real control plane, kwok nodes)"
  started_cluster=1
  bash e2e/cluster.sh up
fi

pidfile="$run/harness.pid"
if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  say "reusing the running pod harness (pid $(cat "$pidfile"))"
else
  mkdir -p "$run/logs"
  "$python" -m e2e.harness --kubeconfig "$kubeconfig" --run-dir "$run" >>"$run/logs/harness.log" 2>&1 &
  started_harness=$!
  for _ in $(seq 1 300); do
    [[ -f "$pidfile" ]] && break
    kill -0 "$started_harness" 2>/dev/null || die "the pod harness exited; see $run/logs/harness.log"
    sleep 0.1
  done
  [[ -f "$pidfile" ]] || die "the pod harness did not start; see $run/logs/harness.log"
fi

# ---- 2. the demo ----------------------------------------------------------------------------
"$python" "$examples/demo.py" --kubeconfig "$kubeconfig" --kubectl "$TOOL_KUBECTL" --helm "$TOOL_HELM" "$@"
