#!/usr/bin/env bash
# The main job on an embedded default: a local 3-member cluster, no Talos needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node --import tsx scripts/demo.ts
