#!/usr/bin/env bash
# Build the real node's binaries (MUSEPOSE_NODE=real) once from the Go module proxy and cache
# them beside the control plane's, keyed by version:
#   $MUSEPOSE_CACHE/bin/<name>-<version>/<name>
# kubelet from the same k8s.io/kubernetes module as kube-apiserver (gobuild/kubernetes);
# containerd, ctr and its runc shim with containerd's own go.mod (`go install @version`);
# CoreDNS likewise. runc and the CNI plugins come from apt (make node-deps).
# Prints the directory holding links to all of them.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${MUSEPOSE_CACHE:-$HOME/.cache/musepose-dev}"
K8S_VERSION=1.35.4          # the control plane's (build-binaries.sh)
CONTAINERD_VERSION=2.2.10   # >= 2.1 for image volumes
COREDNS_VERSION=1.14.7
bindir="$cache/bin/node-current"
mkdir -p "$cache/bin" "$bindir"
exec 9>"$cache/bin/.node-lock"
flock 9

export CGO_ENABLED=0
log() { echo "build-node-binaries: $*" >&2; }

k8s_ldflags() {
  local pkg=k8s.io/component-base/version minor=${K8S_VERSION#1.}
  echo "-X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}" \
       "-X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z" \
       "-X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION"
}

out="$cache/bin/kubelet-$K8S_VERSION"
if [[ ! -x $out/kubelet ]]; then
  log "building kubelet $K8S_VERSION (once; cached in $cache/bin)"
  start=$SECONDS
  mkdir -p "$out"
  (cd "$here/gobuild/kubernetes" && GOFLAGS="-mod=mod -trimpath" \
     go build -ldflags "-s -w $(k8s_ldflags)" -o "$out/kubelet.tmp.$$" k8s.io/kubernetes/cmd/kubelet)
  mv "$out/kubelet.tmp.$$" "$out/kubelet"
  log "built kubelet in $((SECONDS - start)) s"
fi
ln -sf "$out/kubelet" "$bindir/kubelet"

# go_install NAME VERSION MODULE TAGS LDFLAGS PACKAGE... : `go install pkg@version` into the cache
go_install() {
  local name=$1 version=$2 module=$3 tags=$4 ldflags=$5; shift 5
  local out="$cache/bin/$name-$version"
  if [[ ! -f $out/.done ]]; then
    log "building $name $version (once; cached in $cache/bin)"
    local start=$SECONDS pkgs=() p
    for p in "$@"; do pkgs+=("$module$p@v$version"); done
    rm -rf "$out.tmp"; mkdir -p "$out.tmp"
    GOBIN="$out.tmp" GOFLAGS=-trimpath go install -tags "$tags" -ldflags "-s -w $ldflags" "${pkgs[@]}"
    touch "$out.tmp/.done"; rm -rf "$out"; mv "$out.tmp" "$out"
    log "built $name in $((SECONDS - start)) s"
  fi
  local f
  for f in "$out"/*; do ln -sf "$f" "$bindir/$(basename "$f")"; done
}

go_install containerd "$CONTAINERD_VERSION" github.com/containerd/containerd/v2 \
  "no_btrfs no_devmapper no_zfs no_aufs" \
  "-X github.com/containerd/containerd/v2/version.Version=v$CONTAINERD_VERSION" \
  /cmd/containerd /cmd/ctr /cmd/containerd-shim-runc-v2
go_install coredns "$COREDNS_VERSION" github.com/coredns/coredns "" "" ""

echo "$bindir"
