#!/usr/bin/env bash
# Builds the real etcd, kube-apiserver and kubectl from the pinned wrapper modules beside this
# script, once per version, into a cache outside the work tree. Prints the bin directory.
# `--node` also builds the node's kubelet, kube-proxy, kube-controller-manager and kube-scheduler
# (from the same pinned Kubernetes module), CoreDNS and the pods' pause binary: `make deploy` and
# tests/deploy need them.
set -euo pipefail

KUBE_VERSION=v1.34.4
ETCD_VERSION=$(awk 'NF >= 2 && $(NF-1) == "go.etcd.io/etcd/server/v3" {print $NF; exit}' "$(dirname "$0")/etcd/go.mod")
CACHE_ROOT=${INVSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/invsync}
BIN_DIR="$CACHE_ROOT/$KUBE_VERSION/bin"
HACK_DIR=$(cd "$(dirname "$0")" && pwd)

log() { echo "[control-plane] $*" >&2; }

command -v go >/dev/null || { log "Go is needed to build the test control plane (https://go.dev/dl)"; exit 2; }
mkdir -p "$BIN_DIR"
# Concurrent callers (make test, make cluster-up, a pytest fixture) wait here, then find the cache.
exec 9>"$BIN_DIR/.build.lock"
flock 9
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"

build() {  # build NAME PACKAGE_DIR LDFLAGS
  local name=$1 dir=$2 ldflags=$3
  if [ -x "$BIN_DIR/$name" ]; then
    log "$name: cached at $BIN_DIR/$name"
    return
  fi
  log "$name: building (a cold build takes about 2 to 4 minutes on 2 cores; progress every 100 packages)"
  local started=$SECONDS
  # `go build -v` names each package as it is compiled: count them as progress.
  (cd "$dir" && go build -v -trimpath -ldflags "$ldflags" -o "$BIN_DIR/$name.tmp" .) 2>&1 \
    | awk -v n="$name" '/^# cd / {next} /^(#|go: |[^ ]+\.go:)/ {print; next} {c++; if (c % 100 == 0) {printf "[control-plane] %s: %d packages compiled\n", n, c; fflush()}}' >&2
  [ "${PIPESTATUS[0]}" -eq 0 ] || { log "$name: build failed"; exit 1; }
  mv "$BIN_DIR/$name.tmp" "$BIN_DIR/$name"
  log "$name: built in $((SECONDS - started))s"
}

build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=34"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

build etcd "$HACK_DIR/etcd" "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
build kube-apiserver "$HACK_DIR/kube-apiserver" "-s -w $k8s_ldflags"
build kubectl "$HACK_DIR/kubectl" "-s -w $k8s_ldflags"
if [ "${1:-}" = "--node" ]; then
  # The control plane is ready: let other callers use it while the node's parts build.
  exec 8>"$BIN_DIR/.node-build.lock" 9>&-
  flock 8
  for name in kube-controller-manager kube-scheduler kube-proxy kubelet; do
    build "$name" "$HACK_DIR/$name" "-s -w $k8s_ldflags"
  done
  build coredns "$HACK_DIR/coredns" "-s -w"
  build pause "$HACK_DIR/pause" "-s -w"
fi
echo "$BIN_DIR"
