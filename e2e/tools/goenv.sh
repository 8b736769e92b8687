# shellcheck shell=bash
# Sourced by the tool scripts: a private, persistent Go environment under ~/.cache/jobfleet/go
# so warm runs reuse downloaded modules and the build cache, and nothing leaks into ~/go.
JOBFLEET_CACHE="${JOBFLEET_CACHE:-$HOME/.cache/jobfleet}"
export GOPATH="$JOBFLEET_CACHE/go"
export GOMODCACHE="$GOPATH/pkg/mod"
export GOCACHE="$GOPATH/cache"
# Module cache files read-only by default would make `rm -rf ~/.cache/jobfleet` fail;
# VCS stamping would read the enclosing jobfleet checkout, which says nothing about the tools.
export GOFLAGS="-modcacherw -buildvcs=false"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
# The binaries run on this machine only; no cgo keeps them static and the build toolchain-free.
export CGO_ENABLED=0
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
