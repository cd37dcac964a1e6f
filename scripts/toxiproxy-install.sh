#!/usr/bin/env bash
# Builds Toxiproxy's server (Shopify/toxiproxy, a TCP proxy whose faults — latency, down, blackhole, resets,
# bandwidth, slicing, truncation — are driven over HTTP) from the Go module proxy into
# $HOME/.cache/tenantpool/bin/toxiproxy-server, pinned to TOXIPROXY_VERSION. The fault-injection API of
# packages/testing (Toxiproxy.ts) starts it. Idempotent: a binary that reports the pinned version is kept.
# scripts/services-install.sh runs it (so do `npm run services:install` and .ci/run).
#
#   bash scripts/toxiproxy-install.sh           # build unless already there
#   bash scripts/toxiproxy-install.sh --check   # exit 0 when the pinned version is installed, 1 otherwise
#
# Uses $GO_BIN when set, else an installed Go >= 1.23, else fetches a toolchain module (curl, unzip). No root needed.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/go-toolchain.sh
. "${SCRIPT_DIR}/lib/go-toolchain.sh"

TOXIPROXY_VERSION="v2.12.0"
TOXIPROXY_MODULE="github.com/Shopify/toxiproxy/v2"
# Toxiproxy v2.12.0's go.mod needs Go >= 1.23; fetched only when no such Go is installed.
GO_TOOLCHAIN_VERSION="go1.24.13"
BIN_DIR="${HOME}/.cache/tenantpool/bin"
TOXIPROXY_BIN="${BIN_DIR}/toxiproxy-server"

log() { echo "[toxiproxy-install] $*"; }
installed() {
  [ -x "$TOXIPROXY_BIN" ] && [ "$("$TOXIPROXY_BIN" --version 2> /dev/null || true)" = "toxiproxy-server version ${TOXIPROXY_VERSION}" ]
}

case "${1:-}" in
  --check)
    installed
    exit $?
    ;;
  "") ;;
  -h | --help)
    sed -n '2,11p' "$0"
    exit 0
    ;;
  *)
    echo "toxiproxy-install: unknown argument: $1 (expected --check)" >&2
    exit 2
    ;;
esac

if installed; then
  log "Toxiproxy ${TOXIPROXY_VERSION} already built at ${TOXIPROXY_BIN}"
  exit 0
fi

go_bin="${GO_BIN:-}"
if [ -z "$go_bin" ] || ! go_at_least "$go_bin" 23; then
  go_bin="$(find_go 23 || true)"
fi
if [ -z "$go_bin" ]; then
  log "no Go >= 1.23 found"
  go_bin="$(fetch_go "$GO_TOOLCHAIN_VERSION")"
fi

log "building Toxiproxy ${TOXIPROXY_VERSION} with $("$go_bin" env GOVERSION)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$BIN_DIR"
# `go install module@version` builds in module mode from the proxy's copy; the version is stamped the way the
# project's own release build does it (.goreleaser.yml), so `--version` can tell an outdated binary.
GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$work" GOFLAGS="-buildvcs=false -mod=mod" \
  "$go_bin" install -trimpath -ldflags "-s -w -X ${TOXIPROXY_MODULE}.Version=${TOXIPROXY_VERSION}" \
  "${TOXIPROXY_MODULE}/cmd/server@${TOXIPROXY_VERSION}"
mv "$work/server" "$TOXIPROXY_BIN"
installed || {
  echo "toxiproxy-install: the built ${TOXIPROXY_BIN} does not report ${TOXIPROXY_VERSION}" >&2
  exit 1
}
log "installed $("$TOXIPROXY_BIN" --version) at ${TOXIPROXY_BIN}"
