#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up, lint, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "[test] lint and format check" >&2
npm run --silent lint
echo "[test] unit and integration tests" >&2
# One node:test run over every file, so that the runner prints one summary.
node --test --test-concurrency=2 --import tsx test/unit/*.test.ts test/integration/*.test.ts
