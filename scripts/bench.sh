#!/usr/bin/env bash
# `npm run bench [-- --preset quick|default|smoke --etcd-defrag-bin PATH]`: installs what it needs, runs on etcd 3.6.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v etcdctl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-client >/dev/null
  else
    echo "etcdctl is needed: apt-get install etcd-client" >&2
    exit 1
  fi
fi
if [ -z "${ETCD_BIN:-}" ]; then
  ETCD_BIN=$(bash scripts/etcd.sh "${ETCD_VERSION:-3.6}")
  export ETCD_BIN
fi
exec node --import tsx bench/bench.ts "$@"
