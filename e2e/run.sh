#!/usr/bin/env bash
# One command for the e2e tier: build tools (cached), cluster up, pytest e2e, cluster down.
#
# Usage: bash e2e/run.sh [pytest args...]
#   E2E_CLUSTER=kind   run on a kind cluster (needs docker) instead of kwok + harness
#   E2E_KEEP=1         leave the cluster running afterwards (e2e/cluster.sh down to stop it)
# Exits with pytest's exit code; the cluster is torn down on every path (trap).
set -euo pipefail
e2e="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$e2e")"
cd "$repo"
mode="${E2E_CLUSTER:-kwok}"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then python="$repo/.venv/bin/python"; else python="python3"; fi
fi

stamp() { date +%s; }
phase() { echo "e2e/run.sh: $1 took $(($(stamp) - $2))s" >&2; }

t=$(stamp)
if [[ "$mode" == "kind" ]]; then
  bash "$e2e/tools/build.sh" --kind
else
  bash "$e2e/tools/build.sh"
fi
phase "tool build" "$t"

# shellcheck disable=SC2317  # invoked by the EXIT trap
teardown() {
  if [[ "${E2E_KEEP:-}" == "1" ]]; then
    echo "e2e/run.sh: E2E_KEEP=1, cluster left running (bash e2e/cluster.sh down)" >&2
    return
  fi
  local t
  t=$(stamp)
  bash "$e2e/cluster.sh" down || true
  phase "cluster down" "$t"
}
trap teardown EXIT

t=$(stamp)
bash "$e2e/cluster.sh" up
phase "cluster up" "$t"

# The session fixtures reuse this cluster instead of creating their own.
export E2E_REUSE=1 E2E_CLUSTER="$mode" KUBECONFIG="$e2e/.run/kubeconfig"
t=$(stamp)
set +e
"$python" -m pytest e2e -p no:cacheprovider "$@"
rc=$?
set -e
phase "pytest" "$t"
exit "$rc"
