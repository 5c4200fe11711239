#!/usr/bin/env bash
# Prints the path of an etcd binary for the version asked, building it if needed.
#   scripts/etcd.sh 3.6      -> etcd v3.6.16 built from the Go module proxy (the default Talos runs)
#   scripts/etcd.sh 3.7      -> etcd v3.7.3 (Talos 1.14)
#   scripts/etcd.sh 3.5      -> etcd v3.5.21 (Talos 1.10)
#   scripts/etcd.sh 3.4      -> Debian's etcd-server (3.4.23), installed with apt-get when missing
#   scripts/etcd.sh v3.x.y   -> that exact version (v3.6.4 and v3.5.22, with the snapshot/defragment bug,
#                               for test/integration/etcd-versions.test.ts; the same recipe builds 3.5 to 3.7)
# Builds go into .cache/etcd/<version>/ (ignored by git) and are reused.
set -euo pipefail
cd "$(dirname "$0")/.."

# The first line of `$1 --version`, or nothing. The output is captured before it is looked at:
# `"$bin" --version | grep -q` under pipefail fails whenever grep exits at the match before etcd has
# written the rest (etcd dies of SIGPIPE), which made a good cached binary look bad.
version_of() {
  local out
  out=$("$1" --version 2>/dev/null) || true
  printf '%s\n' "${out%%$'\n'*}"
}

want="${1:-3.6}"
case "$want" in
  3.6) version=v3.6.16 ;;
  3.7) version=v3.7.3 ;;
  3.5) version=v3.5.21 ;;
  3.4|debian)
    if ! command -v etcd >/dev/null 2>&1 || [[ "$(version_of etcd)" != "etcd Version: 3.4."* ]]; then
      if [ -x /usr/bin/etcd ] && [[ "$(version_of /usr/bin/etcd)" == "etcd Version: 3.4."* ]]; then
        echo /usr/bin/etcd; exit 0
      fi
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "[etcd] installing Debian's etcd-server" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
      fi
    fi
    [ -x /usr/bin/etcd ] || { echo "Debian's etcd-server is not installed and cannot be (needs root and apt-get)" >&2; exit 1; }
    echo /usr/bin/etcd
    exit 0
    ;;
  v3.*) version="$want" ;;
  *) echo "unknown etcd version '$want' (use 3.6, 3.7, 3.5, 3.4 or v3.x.y)" >&2; exit 2 ;;
esac

dir=".cache/etcd/$version"
bin="$dir/etcd"
if [ -x "$bin" ] && [ "$(version_of "$bin")" = "etcd Version: ${version#v}" ]; then
  echo "$PWD/$bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "go is needed to build etcd $version (or set ETCD_BIN)" >&2; exit 1; }
echo "[etcd] building etcd $version from the Go module proxy (about a minute, once)" >&2
src="$dir/src"
rm -rf "$src"
mkdir -p "$src"
# A main of our own that calls etcd's own entry point: a complete etcd server.
cat >"$src/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
GO
printf 'module etcdbuild\n\ngo 1.23\n' >"$src/go.mod"
(
  cd "$src"
  go get "go.etcd.io/etcd/server/v3@$version" >/dev/null 2>&1 || go get "go.etcd.io/etcd/server/v3@$version"
  go mod tidy >/dev/null 2>&1
  CGO_ENABLED=0 go build -trimpath -ldflags "-X go.etcd.io/etcd/api/v3/version.Version=${version#v}" -o ../etcd .
)
version_of "$bin" >&2
echo "$PWD/$bin"
