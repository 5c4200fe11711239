#!/usr/bin/env bash
# Installs or locates everything the tests and the demo need, then builds.
# Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# npm packages, exactly as locked (again only when package-lock.json changed).
stamp=node_modules/.installed-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi

# etcd is located or built by scripts/etcd.sh (called by the test and demo scripts).
command -v go >/dev/null 2>&1 || [ -n "${ETCD_BIN:-}" ] || {
  echo "go is needed to build etcd 3.6 from the Go module proxy (or set ETCD_BIN to an etcd binary)" >&2
  exit 1
}

log "building"
npm run --silent build
npm run --silent bundle >/dev/null
