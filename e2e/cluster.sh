#!/usr/bin/env bash
# The e2e Kubernetes cluster: up | down | env | status.
#
# Default (E2E_CLUSTER=kwok): a real control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler built by tools/build.sh) started by
# `kwokctl --runtime binary`, with simulated kwok nodes. Pods become local processes
# only while the harness runs (python -m e2e.harness; the pytest session starts it).
# E2E_CLUSTER=kind: a kind cluster with both jobfleet images built and loaded.
#
# Everything lives under e2e/.run/: kubeconfig, kwok's workdir, harness pid and logs.
set -euo pipefail
e2e="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$e2e")"
run="$e2e/.run"
# shellcheck source=e2e/tools/versions.env
source "$e2e/tools/versions.env"

mode="${E2E_CLUSTER:-kwok}"
nodes="${E2E_NODES:-3}"
# Unique per checkout, so a developer's cluster and a CI clone on the same machine
# never share a name (kwokctl/kind key everything by it).
name="${E2E_CLUSTER_NAME:-jobfleet-e2e-$(printf '%s' "$repo" | md5sum | cut -c1-8)}"
kubeconfig="$run/kubeconfig"
export KWOK_WORKDIR="$run/kwok"

log() { echo "cluster.sh: $*" >&2; }

tools_env() { bash "$e2e/tools/build.sh" --print-env; }
eval "$(tools_env)"

# kwok's own node stages at the pinned version (initialize + lease heartbeat, the same
# pair kwokctl uses by default) plus our pod stages (see kwok/stages-pod.yaml).
kwok_config() {
  local dir
  # shellcheck source=e2e/tools/goenv.sh
  source "$e2e/tools/goenv.sh"
  dir="$(go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$dir" ]] || { log "cannot locate sigs.k8s.io/kwok@${KWOK_VERSION} in the module cache"; exit 1; }
  cat "$dir/kustomize/stage/node/fast/node-initialize.yaml"
  echo "---"
  cat "$dir/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml"
  echo "---"
  cat "$e2e/kwok/stages-pod.yaml"
}

# Stop the harness and every process it started, even if it died without cleaning up:
# it records each process group in .run/procs/<pgid>.
stop_harness() {
  local pidfile="$run/harness.pid" pid f
  if [[ -f "$pidfile" ]]; then
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  fi
  for f in "$run"/procs/*; do
    [[ -e "$f" ]] || continue
    kill -KILL -- "-$(basename "$f")" 2>/dev/null || true
    rm -f "$f"
  done
}

kwok_up() {
  [[ -x "$TOOL_KUBE_APISERVER" && -x "$TOOL_KWOKCTL" ]] || bash "$e2e/tools/build.sh"
  stop_harness
  # A fresh cluster starts with fresh logs and scratch space (old pods' files would mislead).
  rm -rf "$run/logs" "$run/pods" "$run/markers" "$run/procs"
  mkdir -p "$run" "$run/logs"
  if "$TOOL_KWOKCTL" get clusters 2>/dev/null | grep -qx "$name"; then
    log "cluster $name exists; recreating it"
    "$TOOL_KWOKCTL" delete cluster --name "$name" >"$run/logs/kwokctl-delete.log" 2>&1
  fi
  kwok_config >"$run/kwok-config.yaml"
  # kwokctl picks version-dependent flags from these (there is no CLI flag for them).
  export KWOK_KUBE_VERSION="$KUBE_VERSION" KWOK_ETCD_VERSION="${ETCD_VERSION#v}"
  log "creating kwok cluster $name (Kubernetes ${KUBE_VERSION}, etcd ${ETCD_VERSION}, $nodes nodes)"
  # kwokctl looks up kubectl on PATH for its own `kwokctl kubectl`/scale helpers.
  PATH="$(dirname "$TOOL_KUBECTL"):$PATH" "$TOOL_KWOKCTL" create cluster \
    --name "$name" \
    --runtime binary \
    --kube-apiserver-binary "$TOOL_KUBE_APISERVER" \
    --kube-controller-manager-binary "$TOOL_KUBE_CONTROLLER_MANAGER" \
    --kube-scheduler-binary "$TOOL_KUBE_SCHEDULER" \
    --kwok-controller-binary "$TOOL_KWOK" \
    --etcd-binary "$TOOL_ETCD" \
    --config "$run/kwok-config.yaml" \
    --enable-crds Logs `# per-pod log files the harness registers for kubectl logs` \
    --wait 3m \
    --quiet-pull >"$run/logs/kwokctl-create.log" 2>&1 ||
    { cat "$run/logs/kwokctl-create.log" >&2; return 1; }
  # Nodes answer on 127.0.0.1: the API server then reaches kwok's kubelet endpoint there, and
  # `kubectl logs` works for harness pods (the harness publishes a Logs object per pod).
  PATH="$(dirname "$TOOL_KUBECTL"):$PATH" "$TOOL_KWOKCTL" scale node --name "$name" \
    --replicas "$nodes" --param '.nodeIPs=["127.0.0.1"]' >>"$run/logs/kwokctl-create.log" 2>&1 ||
    { cat "$run/logs/kwokctl-create.log" >&2; return 1; }
  "$TOOL_KWOKCTL" get kubeconfig --name "$name" >"$kubeconfig.tmp"
  mv "$kubeconfig.tmp" "$kubeconfig"
  "$TOOL_KUBECTL" --kubeconfig "$kubeconfig" wait --for=condition=Ready node --all --timeout=180s >/dev/null
  log "ready: KUBECONFIG=$kubeconfig"
}

kwok_down() {
  stop_harness
  if [[ -x "$TOOL_KWOKCTL" ]] && "$TOOL_KWOKCTL" get clusters 2>/dev/null | grep -qx "$name"; then
    "$TOOL_KWOKCTL" delete cluster --name "$name" >"$run/logs/kwokctl-delete.log" 2>&1 ||
      { cat "$run/logs/kwokctl-delete.log" >&2; return 1; }
  fi
  rm -f "$kubeconfig"
}

kind_up() {
  command -v docker >/dev/null || { log "E2E_CLUSTER=kind needs docker"; exit 1; }
  local kind="${KIND:-$(command -v kind || echo "$TOOL_KIND")}"
  [[ -x "$kind" ]] || { bash "$e2e/tools/build.sh" --kind; kind="$TOOL_KIND"; }
  mkdir -p "$run" "$run/logs"
  "$kind" delete cluster --name "$name" >/dev/null 2>&1 || true
  local image_args=()
  [[ -n "${KIND_NODE_IMAGE:-}" ]] && image_args=(--image "$KIND_NODE_IMAGE")
  "$kind" create cluster --name "$name" --kubeconfig "$kubeconfig" --wait 180s "${image_args[@]}"
  local img
  for img in operator worker; do
    docker build -f "$repo/Dockerfile.$img" -t "jobfleet-$img:e2e" "$repo"
    "$kind" load docker-image "jobfleet-$img:e2e" --name "$name"
  done
  log "ready: KUBECONFIG=$kubeconfig"
}

kind_down() {
  local kind="${KIND:-$(command -v kind || echo "$TOOL_KIND")}"
  if [[ -x "$kind" ]]; then "$kind" delete cluster --name "$name" >/dev/null 2>&1 || true; fi
  rm -f "$kubeconfig"
}

cmd="${1:-}"
case "$mode:$cmd" in
  kwok:up) kwok_up ;;
  kwok:down) kwok_down ;;
  kind:up) kind_up ;;
  kind:down) kind_down ;;
  *:env)
    # For `eval "$(bash e2e/cluster.sh env)"`: the kubeconfig and the tools on PATH.
    echo "export KUBECONFIG='$kubeconfig'"
    echo "export E2E_CLUSTER='$mode'"
    echo "export E2E_CLUSTER_NAME='$name'"
    echo "export KWOK_WORKDIR='$KWOK_WORKDIR'"  # so `kwokctl --name $E2E_CLUSTER_NAME ...` finds it
    tools_env | sed 's/^/export /'
    echo "export PATH='$(dirname "$TOOL_KUBECTL"):$(dirname "$TOOL_HELM"):$(dirname "$TOOL_KWOKCTL"):'\"\$PATH\""
    ;;
  *:status)
    [[ -f "$kubeconfig" ]] || { echo "no cluster"; exit 1; }
    "$TOOL_KUBECTL" --kubeconfig "$kubeconfig" get --raw /readyz && echo
    "$TOOL_KUBECTL" --kubeconfig "$kubeconfig" get nodes
    ;;
  *)
    echo "usage: [E2E_CLUSTER=kwok|kind] $0 up|down|env|status" >&2
    exit 2
    ;;
esac
