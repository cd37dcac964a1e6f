#!/usr/bin/env bash
# Sourced by the install scripts that build Go programs from the Go module proxy (FerretDB, Toxiproxy): finds a Go
# toolchain of at least a given minor version, or fetches one as a toolchain module from the Go module proxy into
# $HOME/.cache/tenantpool/go. Needs curl and unzip only in the second case.
#
#   . scripts/lib/go-toolchain.sh
#   go_bin="$(find_go 24)" || go_bin="$(fetch_go go1.24.13)"

GO_CACHE_DIR="${HOME}/.cache/tenantpool"

# Whether the Go at $1 is at least go1.$2.
go_at_least() {
  local v
  v="$(GOTOOLCHAIN=local "$1" env GOVERSION 2> /dev/null || true)" # e.g. go1.26.8
  [[ "$v" =~ ^go1\.([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge "$2" ]
}

# Prints the path of an installed Go >= go1.$1 (PATH, /usr/local/go, the cache); fails when there is none.
find_go() {
  local candidate
  for candidate in "$(command -v go || true)" /usr/local/go/bin/go "${GO_CACHE_DIR}/go/bin/go"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && go_at_least "$candidate" "$1"; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# Fetches the toolchain $1 (e.g. go1.24.13) from the Go module proxy into the cache and prints its go binary.
fetch_go() {
  local version="$1" go_arch proxy zip_url tmp_zip
  case "$(uname -m)" in
    x86_64) go_arch=amd64 ;;
    aarch64 | arm64) go_arch=arm64 ;;
    *)
      echo "go-toolchain: no Go toolchain for $(uname -m)" >&2
      return 1
      ;;
  esac
  proxy="${GOPROXY:-https://proxy.golang.org}"
  proxy="${proxy%%[,|]*}"
  if [ "$proxy" = "direct" ] || [ "$proxy" = "off" ]; then proxy="https://proxy.golang.org"; fi
  zip_url="${proxy%/}/golang.org/toolchain/@v/v0.0.1-${version}.linux-${go_arch}.zip"
  echo "[go-toolchain] fetching the ${version} toolchain module from ${zip_url}" >&2
  tmp_zip="$(mktemp -d)"
  curl -fsSL --retry 3 -o "${tmp_zip}/go.zip" "$zip_url"
  unzip -q "${tmp_zip}/go.zip" -d "${tmp_zip}/x"
  rm -rf "${GO_CACHE_DIR}/go"
  mkdir -p "$GO_CACHE_DIR"
  mv "${tmp_zip}/x/golang.org/toolchain@v0.0.1-${version}.linux-${go_arch}" "${GO_CACHE_DIR}/go"
  chmod +x "${GO_CACHE_DIR}/go/bin/"* "${GO_CACHE_DIR}/go/pkg/tool/"*/* 2> /dev/null || true
  rm -rf "$tmp_zip"
  echo "${GO_CACHE_DIR}/go/bin/go"
}
