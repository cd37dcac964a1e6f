#!/usr/bin/env bash
# Installs the database servers the test harness starts on loopback: PostgreSQL 15 and Redis from Debian, and
# FerretDB v1.24.2 (a MongoDB wire-protocol server on SQLite) built from the Go module proxy into
# $HOME/.cache/tenantpool/bin/ferretdb. Idempotent: whatever is already present is skipped, and apt-get update
# only runs when a package is missing. `npm start` and `npm test` run it when something is missing
# (scripts/services-ensure.ts, their pre-scripts), and so does CI (.ci/run).
#
# Toxiproxy (the fault-injection proxy of the chaos tests) is built the same way by scripts/toxiproxy-install.sh,
# which this script runs last.
#
#   bash scripts/services-install.sh                     # PostgreSQL, Redis, FerretDB, Toxiproxy
#   bash scripts/services-install.sh --with-ui           # also prometheus and chromium (dashboard tests)
#   bash scripts/services-install.sh --without-toxiproxy # the database servers only (what `npm start` needs)
#
# Needs root (or sudo) for apt-get, on Debian 12 / Ubuntu. Reaches only the Debian mirror and the Go module proxy.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/go-toolchain.sh
. "${SCRIPT_DIR}/lib/go-toolchain.sh"

FERRETDB_VERSION="v1.24.2"
FERRETDB_MODULE="github.com/FerretDB/FerretDB"
# FerretDB v1.24.2's go.mod needs Go >= 1.24; used only when no such Go is installed.
GO_TOOLCHAIN_VERSION="go1.24.13"
CACHE_DIR="${HOME}/.cache/tenantpool"
BIN_DIR="${CACHE_DIR}/bin"
FERRETDB_BIN="${BIN_DIR}/ferretdb"

with_ui=false
with_toxiproxy=true
for arg in "$@"; do
  case "$arg" in
    --with-ui) with_ui=true ;;
    --without-toxiproxy) with_toxiproxy=false ;;
    -h | --help)
      sed -n '2,15p' "$0"
      exit 0
      ;;
    *)
      echo "services-install: unknown argument: $arg (expected --with-ui or --without-toxiproxy)" >&2
      exit 2
      ;;
  esac
done

log() { echo "[services-install] $*"; }

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo > /dev/null 2>&1; then
  SUDO=(sudo)
else
  SUDO=(false)
fi
as_root() {
  if [ "${SUDO[*]}" = false ]; then
    echo "services-install: installing packages needs root (or sudo): $*" >&2
    exit 1
  fi
  "${SUDO[@]}" "$@"
}
apt_get() { as_root env DEBIAN_FRONTEND=noninteractive apt-get "$@"; }
ferretdb_ok() {
  local out
  out="$("$FERRETDB_BIN" --version 2> /dev/null || true)"
  [[ "$out" == *"version: ${FERRETDB_VERSION}"* ]]
}

pg_bin_dir() {
  local dir=/usr/lib/postgresql/15/bin
  [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

apt_missing=() # installed without recommends: the servers only
ui_missing=()  # with recommends (fonts and the like matter for a browser)
pg_bin_dir > /dev/null || apt_missing+=(postgresql-15)
# On Debian 12 postgresql-contrib is a metapackage (contrib ships inside postgresql-15); install it once for parity.
dpkg-query -W -f='${Status}' postgresql-contrib 2> /dev/null | grep -q "install ok installed" || apt_missing+=(postgresql-contrib)
command -v redis-server > /dev/null 2>&1 || apt_missing+=(redis-server)
if [ "$with_ui" = true ]; then
  command -v prometheus > /dev/null 2>&1 || ui_missing+=(prometheus)
  command -v chromium > /dev/null 2>&1 || ui_missing+=(chromium)
fi

# Go >= 1.24 to build FerretDB (and Toxiproxy): the installed one, or a toolchain module from the Go module proxy.
go_bin=""
need_ferretdb=true
if [ -x "$FERRETDB_BIN" ] && ferretdb_ok; then
  need_ferretdb=false
fi
need_toxiproxy=false
if [ "$with_toxiproxy" = true ] && ! bash "${SCRIPT_DIR}/toxiproxy-install.sh" --check > /dev/null 2>&1; then
  need_toxiproxy=true
fi
if [ "$need_ferretdb" = true ] || [ "$need_toxiproxy" = true ]; then
  go_bin="$(find_go 24 || true)"
  if [ -z "$go_bin" ]; then
    command -v curl > /dev/null 2>&1 || apt_missing+=(curl)
    command -v unzip > /dev/null 2>&1 || apt_missing+=(unzip)
    [ -e /etc/ssl/certs/ca-certificates.crt ] || apt_missing+=(ca-certificates)
  fi
fi

if [ "$((${#apt_missing[@]} + ${#ui_missing[@]}))" -gt 0 ]; then
  log "apt-get install ${apt_missing[*]} ${ui_missing[*]}"
  # Don't let the packages start system-wide daemons (postgresql@15-main on 5432, redis on 6379): the harness runs
  # its own throwaway instances, and idle daemons cost memory on a small CI machine.
  policy_rc_created=false
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d > /dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
    policy_rc_created=true
  fi
  cleanup_policy() { if [ "$policy_rc_created" = true ]; then as_root rm -f /usr/sbin/policy-rc.d; fi; }
  trap cleanup_policy EXIT
  apt_get update -q
  apt_options=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  if [ "${#apt_missing[@]}" -gt 0 ]; then
    apt_get install "${apt_options[@]}" --no-install-recommends "${apt_missing[@]}"
  fi
  if [ "${#ui_missing[@]}" -gt 0 ]; then
    apt_get install "${apt_options[@]}" "${ui_missing[@]}"
  fi
  cleanup_policy
  trap - EXIT
else
  log "PostgreSQL 15 and Redis already installed$([ "$with_ui" = true ] && echo ", and prometheus and chromium")"
fi

if [ "$need_ferretdb" = true ]; then
  if [ -z "$go_bin" ]; then
    log "no Go >= 1.24 found"
    go_bin="$(fetch_go "$GO_TOOLCHAIN_VERSION")"
  fi
  log "building FerretDB ${FERRETDB_VERSION} with $("$go_bin" env GOVERSION)"
  # `go install module@version` builds without build/version/version.txt and the binary panics at start, so build
  # from a writable copy of the module source with the version file filled in. The Go build cache is kept.
  work="$(mktemp -d)"
  trap 'chmod -R u+w "$work" 2> /dev/null; rm -rf "$work"' EXIT
  src_dir="$(cd "$work" && GOTOOLCHAIN=local GOFLAGS=-mod=mod "$go_bin" mod download -json "${FERRETDB_MODULE}@${FERRETDB_VERSION}" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  if [ -z "$src_dir" ] || [ ! -d "$src_dir" ]; then
    echo "services-install: go mod download did not report a source directory for ${FERRETDB_MODULE}" >&2
    exit 1
  fi
  cp -R "$src_dir" "$work/src"
  chmod -R u+w "$work/src"
  echo "$FERRETDB_VERSION" > "$work/src/build/version/version.txt"
  mkdir -p "$BIN_DIR"
  (cd "$work/src" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=mod" \
    "$go_bin" build -trimpath -o "$work/ferretdb" ./cmd/ferretdb)
  mv "$work/ferretdb" "$FERRETDB_BIN"
  chmod -R u+w "$work"
  rm -rf "$work"
  trap - EXIT
  ferretdb_ok || {
    echo "services-install: the built ${FERRETDB_BIN} does not report ${FERRETDB_VERSION}" >&2
    exit 1
  }
else
  log "FerretDB ${FERRETDB_VERSION} already built at ${FERRETDB_BIN}"
fi

# Toxiproxy, with the Go found (or fetched) above when there is one.
if [ "$with_toxiproxy" = true ]; then
  GO_BIN="$go_bin" bash "${SCRIPT_DIR}/toxiproxy-install.sh"
fi

pg_dir="$(pg_bin_dir)"
echo "postgres: $("$pg_dir/postgres" --version) (${pg_dir})"
echo "redis:    $(redis-server --version)"
echo "ferretdb: $("$FERRETDB_BIN" --version | head -1) (${FERRETDB_BIN})"
if [ "$with_toxiproxy" = true ]; then
  echo "toxiproxy: $("${BIN_DIR}/toxiproxy-server" --version) (${BIN_DIR}/toxiproxy-server)"
fi
if [ "$with_ui" = true ]; then
  echo "prometheus: $(prometheus --version 2>&1 | head -1)"
  echo "chromium: $(chromium --version 2>&1 | head -1)"
fi
