#!/usr/bin/env bash
# `make run`: the whole demo on one machine. Starts the local control plane unless KUBECONFIG is set,
# installs the CRDs, serves the platform sandbox with examples/'s world, applies examples/ into
# namespace invsync-demo and runs the operator in the foreground. Ctrl-C stops the operator and the
# sandbox; the control plane keeps running until `make cluster-down`.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
STATE_DIR=${INVSYNC_STATE_DIR:-.invsync}
NAMESPACE=invsync-demo
SANDBOX_PORT=18090          # examples/ point their endpoints here
METRICS_PORT=${METRICS_PORT:-8080}
WEBHOOK_PORT=8081           # examples/sandbox.yaml delivers its webhooks here

say() { printf '\033[1m[invsync]\033[0m %s\n' "$*"; }

if [ -z "${KUBECONFIG:-}" ]; then
  say "KUBECONFIG is not set: starting the local control plane (make cluster-up)"
  INVSYNC_BIN_DIR=${INVSYNC_BIN_DIR:-$(hack/build-control-plane.sh)} \
    "$VENV/bin/python" -m invsync.testing.cluster up --state-dir "$STATE_DIR"
  export KUBECONFIG=$PWD/$STATE_DIR/kubeconfig
  KUBECTL="$(hack/build-control-plane.sh)/kubectl"
else
  say "using the cluster of KUBECONFIG=$KUBECONFIG"
  KUBECTL=$(command -v kubectl || echo "$(hack/build-control-plane.sh)/kubectl")
fi

say "installing the CRDs"
"$KUBECTL" apply -f crds/ >/dev/null
"$KUBECTL" wait --for=condition=Established --timeout=60s -f crds/ >/dev/null

mkdir -p "$STATE_DIR"
say "starting the sandbox on http://127.0.0.1:$SANDBOX_PORT (log: $STATE_DIR/sandbox.log)"
"$VENV/bin/invsync" sandbox --config examples/sandbox.yaml --port "$SANDBOX_PORT" >"$STATE_DIR/sandbox.log" 2>&1 &
SANDBOX_PID=$!
trap 'kill "$SANDBOX_PID" 2>/dev/null; wait "$SANDBOX_PID" 2>/dev/null || true' EXIT
until "$VENV/bin/python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$SANDBOX_PORT/_sandbox/state', timeout=1)" 2>/dev/null; do
  kill -0 "$SANDBOX_PID" 2>/dev/null || { cat "$STATE_DIR/sandbox.log" >&2; exit 1; }
  sleep 0.2
done

say "applying examples/ into namespace $NAMESPACE"
"$KUBECTL" create namespace "$NAMESPACE" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$KUBECTL" apply -n "$NAMESPACE" -f examples/ >/dev/null

cat <<EOF

  In another shell: export KUBECONFIG=$KUBECONFIG
  Watch it:        $KUBECTL get invsync -n $NAMESPACE
                   $VENV/bin/invsync status -n $NAMESPACE
  Metrics:         http://127.0.0.1:$METRICS_PORT/metrics
  The channel:     curl -s http://127.0.0.1:$SANDBOX_PORT/_sandbox/state | python3 -m json.tool
  Change stock:    curl -s -XPOST http://127.0.0.1:$SANDBOX_PORT/_sandbox/stock \\
                     -d '{"source": "wms", "location": "wh1", "sku": "EB-A", "available": 40}'
                   (the WMS webhook reaches the operator; EB-A in Jakarta becomes 40 x 90% x 50% = 18)
  Three channels:  curl -s -XPOST http://127.0.0.1:$SANDBOX_PORT/_sandbox/stock \\
                     -d '{"source": "wms", "location": "sea1", "sku": "SEA-1", "available": 60}'
                   (SEA-1 becomes 60 x 33% = 19 on TikTok tiktok-sea, Shopee shopee-sg and Lazada lazada-sg)
  Sync now:        $VENV/bin/invsync sync easyboss-multi-warehouse -n $NAMESPACE
  Stop:            Ctrl-C (the control plane keeps running: make cluster-down)

EOF

say "running the operator (invsync run -n $NAMESPACE)"
"$VENV/bin/invsync" run -n "$NAMESPACE" --metrics-port "$METRICS_PORT" --webhook-port "$WEBHOOK_PORT"
