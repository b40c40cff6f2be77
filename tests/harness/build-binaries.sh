#!/usr/bin/env bash
# Build the test environment's binaries once from the Go module proxy and cache them
# outside the repository, keyed by version:
#   $MUSEPOSE_CACHE/bin/<name>-<version>/<name>
# Prints the directory holding links to all of them (the harness reads it).
# KUBEBUILDER_ASSETS, when it holds kube-apiserver, etcd and kubectl, is used as is.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${MUSEPOSE_CACHE:-$HOME/.cache/musepose-dev}"
K8S_VERSION=1.35.4        # kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
ETCD_VERSION=3.6.16
HELM_VERSION=3.19.5
MINIO_VERSION=2026-02-12-7aac2a2c5b7c      # the pseudo-version pinned in gobuild/minio/go.mod
ACTIONLINT_VERSION=1.7.12                  # make lint: the GitHub workflows
bindir="$cache/bin/current"
mkdir -p "$cache/bin" "$bindir"
# One build at a time per cache: concurrent test sessions (or worktrees) wait for the first.
exec 9>"$cache/bin/.lock"
flock 9

export GOFLAGS="-mod=mod -trimpath"
export CGO_ENABLED=0

log() { echo "build-binaries: $*" >&2; }

# build NAME VERSION MODULE_DIR PACKAGE [LDFLAGS]
build() {
  local name=$1 version=$2 moddir=$3 pkg=$4 ldflags=${5:-}
  local out="$cache/bin/$name-$version/$name"
  if [[ ! -x "$out" ]]; then
    log "building $name $version (once; cached in $cache/bin)"
    local start=$SECONDS
    mkdir -p "$(dirname "$out")"
    (cd "$moddir" && go build -ldflags "-s -w $ldflags" -o "$out.tmp.$$" "$pkg")
    mv "$out.tmp.$$" "$out"
    log "built $name in $((SECONDS - start)) s"
  fi
  ln -sf "$out" "$bindir/$name"
}

from_assets() {
  local name=$1
  if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/$name" ]]; then
    ln -sf "$KUBEBUILDER_ASSETS/$name" "$bindir/$name"
    return 0
  fi
  return 1
}

k8s_ldflags() {
  local pkg=k8s.io/component-base/version minor=${K8S_VERSION#1.}
  echo "-X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}" \
       "-X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z" \
       "-X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION"
}

for component in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  from_assets "$component" || build "$component" "$K8S_VERSION" "$here/gobuild/kubernetes" \
    "k8s.io/kubernetes/cmd/$component" "$(k8s_ldflags)"
done
from_assets etcd || build etcd "$ETCD_VERSION" "$here/gobuild/etcd" go.etcd.io/etcd/server/v3
from_assets helm || build helm "$HELM_VERSION" "$here/gobuild/helm" helm.sh/helm/v3/cmd/helm \
  "-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
build actionlint "$ACTIONLINT_VERSION" "$here/gobuild/actionlint" \
  github.com/rhysd/actionlint/cmd/actionlint "-X github.com/rhysd/actionlint.version=v$ACTIONLINT_VERSION"
from_assets minio || build minio "$MINIO_VERSION" "$here/gobuild/minio" github.com/minio/minio

echo "$bindir"
