#!/usr/bin/env bash
# Prints the path of the benchmark's Go load generator (bench/loadgen), building it
# into .cache/bench/ when its source changed. Its modules come from the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null 2>&1 || { echo "go is needed to build the benchmark's load generator" >&2; exit 1; }
hash=$(cat bench/loadgen/go.mod bench/loadgen/go.sum bench/loadgen/*.go | sha256sum | cut -c1-16)
bin=".cache/bench/loadgen-$hash"
if [ ! -x "$bin" ]; then
  echo "[bench] building the load generator (bench/loadgen)" >&2
  mkdir -p .cache/bench
  (cd bench/loadgen && CGO_ENABLED=0 go build -trimpath -o "../../$bin.tmp" .)
  mv "$bin.tmp" "$bin"
fi
echo "$PWD/$bin"
