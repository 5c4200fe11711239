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

# etcd: $ETCD_BIN, else etcd on PATH, else Debian's etcd-server.
if [ -n "${ETCD_BIN:-}" ]; then
  [ -x "$ETCD_BIN" ] || { echo "ETCD_BIN=$ETCD_BIN is not an executable file" >&2; exit 1; }
elif ! command -v etcd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing etcd (Debian etcd-server)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
  fi
  command -v etcd >/dev/null 2>&1 || {
    echo "etcd not found: install it (Debian: apt-get install etcd-server) or set ETCD_BIN to an etcd binary" >&2
    exit 1
  }
fi

log "building"
npm run --silent build
