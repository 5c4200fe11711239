#!/usr/bin/env bash
# The main job on an embedded default: a local 3-member cluster, no Talos needed.
# Uses etcd 3.6 (ETCD_VERSION=3.5|3.4 or ETCD_BIN=/path/to/etcd to choose another).
# `npm run demo -- --keep` keeps the cluster up afterwards, to try the CLI by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${ETCD_BIN:-}" ]; then
  ETCD_BIN=$(bash scripts/etcd.sh "${ETCD_VERSION:-3.6}")
  export ETCD_BIN
fi
version=$("$ETCD_BIN" --version) || true
echo "[demo] ${version%%$'\n'*}" >&2
exec node --import tsx scripts/demo.ts "$@"
