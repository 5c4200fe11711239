#!/usr/bin/env bash
# Puts what `npm install -g talos-etcd-defrag` would download into the npm cache, once per package-lock.json,
# so that the test of the packed package (test/integration/npm-package.test.ts) installs it --offline:
# npm pack, then a real global install into a throwaway prefix (which may reach the registry).
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=.cache/npm-package-cache.sha256
want=$( (cat package.json package-lock.json) | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[npm-package-cache] warming the npm cache for the packed package (once)" >&2
npm pack --pack-destination "$tmp" --silent >/dev/null
npm install -g --prefix "$tmp/prefix" "$tmp"/talos-etcd-defrag-*.tgz --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null
mkdir -p .cache
echo "$want" >"$stamp"
