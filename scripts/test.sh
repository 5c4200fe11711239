#!/usr/bin/env bash
# The whole test suite from a fresh clone: set-up, lint, then unit and integration
# tests on etcd 3.6 (what Talos runs), and the run scenarios, the live view (the second signal
# included) and the etcd backend's scenarios (TLS, client certificates) again on 3.7, 3.5 and 3.4.
#   ETCD_BIN=/path/to/etcd npm test   -> everything on that etcd only
#   ETCD_VERSION=3.5 npm test         -> everything on 3.5, then the run scenarios on the others
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# helm, kustomize and actionlint (go install, pinned, reused from .cache/bin).
bash scripts/k8s-tools.sh >/dev/null
# The npm package's dependencies in the npm cache, for its offline install test.
bash scripts/npm-package-cache.sh
# Node 24, the image's runtime, for the tests that run the bundle as the image does (.cache/node).
bash scripts/node24.sh >/dev/null
# A real kube-apiserver for the lease and chart tests (built once, about 5 minutes, into .cache/).
KUBE_APISERVER_BIN=${KUBE_APISERVER_BIN:-$(bash scripts/kube-apiserver.sh)}
export KUBE_APISERVER_BIN
# A real Pushgateway and promtool, etcdctl for the benchmark's smoke run, and an OCI registry
# (distribution) for the chart's push and pull (Debian packages).
if ! command -v promtool >/dev/null 2>&1 || [ ! -x /usr/bin/prometheus-pushgateway ] || ! command -v etcdctl >/dev/null 2>&1 ||
  [ ! -x /usr/bin/docker-registry ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[test] installing prometheus-pushgateway, prometheus (promtool), etcd-client (etcdctl) and docker-registry" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      prometheus-pushgateway prometheus etcd-client docker-registry >/dev/null
  else
    echo "needed: apt-get install prometheus-pushgateway prometheus etcd-client docker-registry" >&2
    exit 1
  fi
fi
# The etcd versions with the snapshot/defragment bug that test/integration/etcd-versions.test.ts runs
# (built once from the Go module proxy into .cache/etcd, like 3.6; the test would build them itself).
bash scripts/etcd.sh v3.6.4 >/dev/null
bash scripts/etcd.sh v3.5.22 >/dev/null
echo "[test] lint and format check" >&2
npm run --silent lint
# The GitHub workflows cannot run here: they are linted (actionlint), not run.
echo "[test] lint the GitHub workflows (actionlint)" >&2
npm run --silent lint:workflows

# The first line of `etcd --version`, read whole first (a `| head` under pipefail can fail by SIGPIPE).
etcd_version() {
  local out
  out=$("$ETCD_BIN" --version)
  printf '%s\n' "${out%%$'\n'*}"
}

run_tests() {
  node --test --test-concurrency=2 --import tsx "$@"
}

if [ -n "${ETCD_BIN:-}" ]; then
  echo "[test] etcd under test: $(etcd_version) ($ETCD_BIN)" >&2
  run_tests test/unit/*.test.ts test/integration/*.test.ts
  exit 0
fi

main="${ETCD_VERSION:-3.6}"
ETCD_BIN=$(bash scripts/etcd.sh "$main")
export ETCD_BIN
echo "[test] etcd under test: $(etcd_version)" >&2
run_tests test/unit/*.test.ts test/integration/*.test.ts

for version in 3.6 3.7 3.5 3.4; do
  [ "$version" = "$main" ] && continue
  ETCD_BIN=$(bash scripts/etcd.sh "$version")
  export ETCD_BIN
  echo "[test] run scenarios on $(etcd_version)" >&2
  run_tests test/integration/run.test.ts test/integration/run-faults.test.ts test/integration/live-view.test.ts \
    test/integration/etcd-backend.test.ts
done
