#!/usr/bin/env bash
# Builds the real helm from the pinned wrapper module in hack/helm (go.mod's tool directive, go.sum),
# once per version, into the same cache as hack/build-control-plane.sh. Prints the helm binary's path.
set -euo pipefail

HACK_DIR=$(cd "$(dirname "$0")" && pwd)
HELM_VERSION=$(awk '$1 == "helm.sh/helm/v3" {print $2; exit}' "$HACK_DIR/helm/go.mod")
CACHE_ROOT=${INVSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/invsync}
BIN_DIR="$CACHE_ROOT/helm-$HELM_VERSION/bin"

log() { echo "[helm] $*" >&2; }

command -v go >/dev/null || { log "Go is needed to build helm (https://go.dev/dl)"; exit 2; }
mkdir -p "$BIN_DIR"
exec 9>"$BIN_DIR/.build.lock"
flock 9
if [ -x "$BIN_DIR/helm" ]; then
  log "cached at $BIN_DIR/helm"
else
  log "building helm $HELM_VERSION (about 2 minutes on 2 cores with a warm module cache)"
  started=$SECONDS
  (cd "$HACK_DIR/helm" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    -o "$BIN_DIR/helm.tmp" helm.sh/helm/v3/cmd/helm)
  mv "$BIN_DIR/helm.tmp" "$BIN_DIR/helm"
  log "built in $((SECONDS - started))s"
fi
echo "$BIN_DIR/helm"
