#!/usr/bin/env bash
# Set up what `make demo` and `make test` need on a fresh Debian machine; a no-op when done.
#
#   1. Debian packages that are missing (redis-server, openssl, shellcheck, chromium, python3-venv, ...),
#      through apt-get (as root, or with sudo);
#   2. the virtualenv .venv with the package and its dev tools (make venv);
#   3. the pinned Kubernetes tools, helm, Prometheus and Alertmanager, built once into
#      ~/.cache/jobfleet (e2e/tools/build.sh).
#
# Usage: bash scripts/bootstrap.sh [--no-tools]
# Each step prints one line; the output of apt-get and of the builds goes to log files whose
# path is printed when a step fails.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
logs="${JOBFLEET_CACHE:-$HOME/.cache/jobfleet}/logs"
mkdir -p "$logs"

say() { echo "bootstrap: $*" >&2; }
fail() {
  say "$1 failed; its output is in $2"
  tail -n 20 "$2" >&2 || true
  exit 1
}

# command → Debian package that provides it.
declare -A PACKAGES=(
  [redis-server]=redis-server
  [redis-cli]=redis-tools
  [openssl]=openssl           # certificates for the TLS tests
  [shellcheck]=shellcheck     # lints the shell scripts (tests/packaging)
  [make]=make
  [go]=golang-go              # builds the e2e tools (a Go already on PATH is used as it is)
  [chromium]=chromium         # the dashboard's browser test (tests/browser), driven by playwright
)

missing=()
for cmd in "${!PACKAGES[@]}"; do
  command -v "$cmd" >/dev/null || missing+=("${PACKAGES[$cmd]}")
done
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)

if ((${#missing[@]})); then
  sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || { say "need root or sudo to install: ${missing[*]}"; exit 1; }
    sudo=(sudo)
  fi
  say "installing Debian packages: ${missing[*]}"
  log="$logs/apt.log"
  {
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  } >"$log" 2>&1 || fail "apt-get install" "$log"
  # The package starts a server on 6379; tests start their own on free ports.
  if command -v systemctl >/dev/null; then
    "${sudo[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
fi

if [[ ! -f .venv/.installed || pyproject.toml -nt .venv/.installed ]]; then
  say "creating the virtualenv .venv (pip install -e '.[operator,dev]')"
  log="$logs/venv.log"
  make --no-print-directory venv >"$log" 2>&1 || fail "make venv" "$log"
fi

if [[ "${1:-}" != "--no-tools" ]]; then
  bash e2e/tools/build.sh
fi
