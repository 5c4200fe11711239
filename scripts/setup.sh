#!/usr/bin/env bash
# Installs or locates everything the tests and the demo need, then builds.
# Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# npm packages, exactly as locked.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s <(node -e 'const l=require("./package-lock.json");delete l.name;delete l.version;console.log(JSON.stringify(l.packages[""]))') <(node -e 'try{const l=require("./node_modules/.package-lock.json");console.log(JSON.stringify(l.packages[""]||null))}catch{console.log("none")}' 2>/dev/null); then
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
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
