#!/usr/bin/env bash
# Prints the path of a kube-apiserver binary, building it once from the Go module proxy.
#   scripts/kube-apiserver.sh   -> .cache/kube-apiserver/v1.34.2/kube-apiserver
# k8s.io/kubernetes is not meant to be required as a module: its go.mod replaces every
# k8s.io staging module with a directory of its own repository. Ours replaces each with its
# published release (v0.34.2 for v1.34.2), then builds a main calling the apiserver's own
# entry point. About 5 minutes on 2 cores, once; reused from .cache/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."

version=v1.34.2
staging=v0.34.2
dir=".cache/kube-apiserver/$version"
bin="$dir/kube-apiserver"
# The version is captured first: `| grep -q` under pipefail can fail by SIGPIPE and rebuild for nothing.
if [ -x "$bin" ] && [[ "$("$bin" --version 2>/dev/null || true)" == *"Kubernetes $version"* ]]; then
  echo "$PWD/$bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "go is needed to build kube-apiserver $version (or set KUBE_APISERVER_BIN)" >&2; exit 1; }
echo "[kube-apiserver] building kube-apiserver $version from the Go module proxy (about 5 minutes, once)" >&2
src="$dir/src"
rm -rf "$src"
mkdir -p "$src"
cat >"$src/main.go" <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
GO
# The staging modules k8s.io/kubernetes v1.34.2 replaces with ./staging/src/k8s.io/<name>.
modules="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
  kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller"
{
  printf 'module kubeapiserverbuild\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$version"
  for m in $modules; do printf '\tk8s.io/%s => k8s.io/%s %s\n' "$m" "$m" "$staging"; done
  printf ')\n'
} >"$src/go.mod"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1"
ldflags="$ldflags -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/component-base/version.gitTreeState=clean"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$version"
(
  cd "$src"
  go mod tidy >/dev/null 2>&1 || go mod tidy
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o ../kube-apiserver .
)
"$bin" --version >&2
echo "$PWD/$bin"
