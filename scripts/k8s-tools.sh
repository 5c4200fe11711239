#!/usr/bin/env bash
# Installs pinned helm, kustomize, actionlint (the workflows' linter) and yq (Mike Farah's, for the docs'
# recipe test) with `go install` into .cache/bin (ignored by git),
# reusing them when present. Prints nothing but errors; the binaries' directory on success.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.19.0
KUSTOMIZE_VERSION=v5.7.1
YQ_VERSION=v4.54.3
ACTIONLINT_VERSION=v1.7.12

bin="$PWD/.cache/bin"
mkdir -p "$bin"

install() {
  local name="$1" module="$2" version="$3"
  if [ -x "$bin/$name" ] && [ "$(cat "$bin/.$name.version" 2>/dev/null)" = "$version" ]; then
    return
  fi
  command -v go >/dev/null 2>&1 || { echo "go is needed to install $name $version" >&2; exit 1; }
  echo "[k8s-tools] installing $name $version with go install (once; a few minutes)" >&2
  GOBIN="$bin" CGO_ENABLED=0 go install "$module@$version"
  echo "$version" >"$bin/.$name.version"
}

install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
install kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
install yq github.com/mikefarah/yq/v4 "$YQ_VERSION"
install actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION"
echo "$bin"
