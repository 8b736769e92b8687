#!/usr/bin/env bash
# Build the e2e tools at the versions pinned in versions.env, once per machine.
#
# Every tool lands in ~/.cache/jobfleet/<tool>-<version>/bin/<tool>. A tool whose binary is
# already there is skipped, so a warm run only checks files and prints nothing. A cold run
# prints one progress line per tool (name, elapsed time, done); the Go toolchain's own output
# goes to ~/.cache/jobfleet/logs/build-tools.log, whose path and tail are printed on failure.
# Usage: build.sh [--kind]   (--kind also builds kind, for E2E_CLUSTER=kind)
#        build.sh --print-env (print TOOL_<NAME>=<path> lines for the other scripts)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=goenv.sh
source "$here/goenv.sh"

# tool name → "<cache dir name>" (the path convention other scripts rely on).
tool_path() { echo "$JOBFLEET_CACHE/$1-$2/bin/$1"; }

KUBE_TOOLS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

print_env() {
  local t var
  for t in "${KUBE_TOOLS[@]}"; do
    var="TOOL_$(tr 'a-z-' 'A-Z_' <<<"$t")"
    echo "$var=$(tool_path "$t" "$KUBE_VERSION")"
  done
  echo "TOOL_ETCD=$(tool_path etcd "$ETCD_VERSION")"
  echo "TOOL_KWOK=$(tool_path kwok "$KWOK_VERSION")"
  echo "TOOL_KWOKCTL=$(tool_path kwokctl "$KWOK_VERSION")"
  echo "TOOL_HELM=$(tool_path helm "$HELM_VERSION")"
  echo "TOOL_KIND=$(tool_path kind "$KIND_VERSION")"
  echo "TOOL_PROMETHEUS=$(tool_path prometheus "$PROMETHEUS_VERSION")"
  echo "TOOL_ALERTMANAGER=$(tool_path alertmanager "$ALERTMANAGER_VERSION")"
}

log() { echo "build.sh: $*" >&2; }

BUILD_LOG="$JOBFLEET_CACHE/logs/build-tools.log"
STEPS=0

elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# step <label> <command...>: run one tool's build with its output in BUILD_LOG and one line
# on stderr for it — rewritten in place on a terminal, a heartbeat every minute elsewhere
# (CI logs) — ending in "done in <time>", or in the log's path and tail on failure.
step() {
  local label="$1" start=$SECONDS pid beat=0 t
  shift
  mkdir -p "$(dirname "$BUILD_LOG")"
  if ((!STEPS++)); then : >"$BUILD_LOG"; fi # the log holds this run's builds only
  echo "=== $label ($(date -u +%FT%TZ))" >>"$BUILD_LOG"
  "$@" >>"$BUILD_LOG" 2>&1 &
  pid=$!
  local tty=0
  [[ -t 2 ]] && tty=1
  ((tty)) || log "$label: building"
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    t=$((SECONDS - start))
    if ((tty)); then
      printf '\rbuild.sh: %s: building, %s' "$label" "$(elapsed "$t")" >&2
    elif ((t / 60 > beat)); then
      beat=$((t / 60))
      log "$label: still building, $(elapsed "$t")"
    fi
  done
  ((tty)) && printf '\r\033[K' >&2
  if ! wait "$pid"; then
    log "$label: FAILED after $(elapsed $((SECONDS - start))); the build output is in $BUILD_LOG:"
    tail -n 25 "$BUILD_LOG" >&2
    exit 1
  fi
  log "$label: done in $(elapsed $((SECONDS - start)))"
}

# Builds are CPU-heavy and the machine is shared: stay out of the way of interactive work.
gobuild() { nice -n 10 go "$@"; }

# install_into <dir> <file...>: atomically move freshly built binaries into their cache dirs,
# so an interrupted build never leaves a half-written binary that a warm run would trust.
install_bin() {
  local src="$1" dst="$2"
  mkdir -p "$(dirname "$dst")"
  mv -f "$src" "$dst.tmp.$$"
  mv -f "$dst.tmp.$$" "$dst"
}

# pinned <go.mod> <module> <version>: whether the wrapper module requires exactly that version.
pinned() { grep -qE "^(require)?[[:space:]]*${2//./\\.} ${3//./\\.}( |\$)" "$1"; }

kube_build() { # <out dir> <ldflags> <tool>
  cd "$here/k8s" && gobuild build -trimpath -ldflags "-s -w$2" -o "$1/" "k8s.io/kubernetes/cmd/$3"
}

build_kube() {
  local missing=() t
  for t in "${KUBE_TOOLS[@]}"; do
    [[ -x "$(tool_path "$t" "$KUBE_VERSION")" ]] || missing+=("$t")
  done
  ((${#missing[@]})) || return 0
  if ! pinned "$here/k8s/go.mod" k8s.io/kubernetes "$KUBE_VERSION"; then
    log "e2e/tools/k8s/go.mod is not at ${KUBE_VERSION}; run: bash e2e/tools/gen-gomod.sh"
    exit 1
  fi
  # The same variables Kubernetes' hack/lib/version.sh sets, so `--version` reports the
  # real release and the API server derives its binary/emulation version from it.
  local minor="${KUBE_VERSION#v1.}"
  minor="${minor%%.*}"
  local ld="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X ${pkg}.gitVersion=${KUBE_VERSION}"
    ld+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    ld+=" -X ${pkg}.gitTreeState=clean"
    ld+=" -X ${pkg}.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  local out
  out="$(mktemp -d "$JOBFLEET_CACHE/.build.XXXXXX")"
  # One tool at a time, for one progress line each; the Go build cache shares the packages
  # they have in common, so the later ones mostly link.
  for t in "${missing[@]}"; do
    step "$t $KUBE_VERSION" kube_build "$out" "$ld" "$t"
    install_bin "$out/$t" "$(tool_path "$t" "$KUBE_VERSION")"
  done
  rm -rf "$out"
}

etcd_build() { # <out file>
  cd "$here/etcd" && gobuild build -trimpath -ldflags "-s -w" -o "$1" go.etcd.io/etcd/server/v3
}

build_etcd() {
  local dst
  dst="$(tool_path etcd "$ETCD_VERSION")"
  [[ -x "$dst" ]] && return 0
  if ! pinned "$here/etcd/go.mod" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"; then
    log "e2e/tools/etcd/go.mod is not at ${ETCD_VERSION}; run: bash e2e/tools/gen-gomod.sh"
    exit 1
  fi
  local out
  out="$(mktemp -d "$JOBFLEET_CACHE/.build.XXXXXX")"
  step "etcd $ETCD_VERSION" etcd_build "$out/etcd"
  install_bin "$out/etcd" "$dst"
  rm -rf "$out"
}

go_install_into() { # <GOBIN> <ldflags> <package@version> [go build flags...]
  local bin="$1" ldflags="$2" pkg="$3"
  shift 3
  GOBIN="$bin" gobuild install -trimpath -ldflags "-s -w $ldflags" "$@" "$pkg"
}

# go_install <tool> <version> <package@version> [ldflags [go build flags...]]: `go install`
# into a scratch GOBIN.
go_install() {
  local tool="$1" version="$2" pkg="$3" ldflags="${4:-}" dst
  shift $(($# < 4 ? $# : 4))
  dst="$(tool_path "$tool" "$version")"
  [[ -x "$dst" ]] && return 0
  local out
  out="$(mktemp -d "$JOBFLEET_CACHE/.build.XXXXXX")"
  step "$tool $version" go_install_into "$out" "$ldflags" "$pkg" "$@"
  install_bin "$out/$tool" "$dst"
  rm -rf "$out"
}

# prometheus/common/version, which both tools' --version and build_info metric read.
version_ldflags() { # <version without v>
  local v="github.com/prometheus/common/version"
  echo "-X $v.Version=$1 -X $v.Branch=release -X $v.BuildUser=jobfleet -X $v.BuildDate=$(date -u +%Y%m%d-%H:%M:%S)"
}

# Prometheus 3.x: Go module v0.3MM.P is release 3.MM.P.
build_prometheus() {
  local mm="${PROMETHEUS_VERSION#v0.}"
  local release="${mm:0:1}.$((10#${mm:1:2})).${mm#*.}"
  # remove_all_sd drops every cloud/orchestrator service discovery (and their SDKs, most of the
  # build) but keeps file_sd and http_sd, which is all the e2e tier uses. Without the
  # builtinassets tag the web UI is not embedded: the HTTP API is all that is needed.
  go_install prometheus "$PROMETHEUS_VERSION" \
    "github.com/prometheus/prometheus/cmd/prometheus@${PROMETHEUS_VERSION}" \
    "$(version_ldflags "$release")" -tags remove_all_sd
}

# Alertmanager's module does not ship its compiled web UI (ui/app/dist, built by npm in its
# release process) although ui/web.go embeds it, so `go install ...@version` fails. It is
# built from a scratch copy of the module (Go refuses overlays inside the module cache) with
# a one-page stand-in for the UI; the API, which is all the tests use, is untouched.
am_build() { # <out file> <ldflags>
  local mod="github.com/prometheus/alertmanager" dir src
  dir="$(go mod download -json "$mod@$ALERTMANAGER_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$dir" ]] || return 1
  src="$(dirname "$1")/src"
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  mkdir -p "$src/ui/app/dist/elm"
  echo '<!doctype html><title>Alertmanager</title><p>Built without its web UI: API only.' \
    >"$src/ui/app/dist/elm/index.html"
  (cd "$src" && gobuild build -trimpath -ldflags "-s -w $2" -o "$1" ./cmd/alertmanager)
  rm -rf "$src"
}

build_alertmanager() {
  local dst out
  dst="$(tool_path alertmanager "$ALERTMANAGER_VERSION")"
  [[ -x "$dst" ]] && return 0
  out="$(mktemp -d "$JOBFLEET_CACHE/.build.XXXXXX")"
  step "alertmanager $ALERTMANAGER_VERSION" am_build "$out/alertmanager" \
    "$(version_ldflags "${ALERTMANAGER_VERSION#v}")"
  install_bin "$out/alertmanager" "$dst"
  rm -rf "$out"
}

main() {
  if [[ "${1:-}" == "--print-env" ]]; then
    print_env
    return
  fi
  mkdir -p "$JOBFLEET_CACHE"
  command -v go >/dev/null || { log "Go is required (https://go.dev/dl)"; exit 1; }
  if [[ "${1:-}" == "--kind" ]]; then
    # kind mode runs a real cluster: only the clients are needed, and those already on
    # PATH (CI installs them with their own actions) are used as they are.
    command -v kind >/dev/null || go_install kind "$KIND_VERSION" "sigs.k8s.io/kind@${KIND_VERSION}"
    command -v helm >/dev/null || go_install helm "$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" \
      "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
    command -v kubectl >/dev/null || KUBE_TOOLS=(kubectl) build_kube
    return
  fi
  build_etcd
  go_install kwok "$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBE_VERSION#v}"
  go_install kwokctl "$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@${KWOK_VERSION}" \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBE_VERSION#v}"
  go_install helm "$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" \
    "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  build_kube
  build_prometheus
  build_alertmanager
}

main "$@"
