#!/usr/bin/env bash
# Local deployment: one flower-superlink and K flower-supernode processes on 127.0.0.1 (node i gets
# partition-id=i), the fedfair app run against them with `flwr run . deploy`, results.json
# collected, and every process this script started stopped again, also on failure or Ctrl-C.
#
#   scripts/deploy_local.sh K [hydra overrides...]
#   OUT_DIR=/tmp/run scripts/deploy_local.sh 2 stage2=none stage1.rho=0
#
# Prints `results: <path>` last. Process logs go to <OUT_DIR>/deploy-logs/.
set -euo pipefail

usage="usage: scripts/deploy_local.sh K [hydra overrides...]"
K=${1:-}
[[ $K =~ ^[1-9][0-9]*$ ]] || { echo "error: K must be a positive integer, got '${K}' ($usage)" >&2; exit 2; }
shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
BIN=$("$PY" -c 'import os, sys; print(os.path.dirname(sys.executable))')
export PATH="$BIN:$PATH"  # flower-superlink starts flower-superexec by name
for tool in flwr flower-superlink flower-supernode; do
    [[ -x $BIN/$tool ]] || { echo "error: $tool not found next to $PY; install fedfair first" >&2; exit 2; }
done

# Offline unless the user says otherwise (Flower and Ray phone home by default).
export FLWR_TELEMETRY_ENABLED=${FLWR_TELEMETRY_ENABLED:-0}
export FLWR_DISABLE_UPDATE_CHECK=${FLWR_DISABLE_UPDATE_CHECK:-1}
export RAY_USAGE_STATS_ENABLED=${RAY_USAGE_STATS_ENABLED:-0}
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=${FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION:-1}

OUT_DIR=${OUT_DIR:-$ROOT/outputs/deploy/$(date +%Y-%m-%d_%H-%M-%S)}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOGS=$OUT_DIR/deploy-logs
mkdir -p "$LOGS"
WORK=$(mktemp -d -t fedfair-deploy.XXXXXX)
export FLWR_HOME=$WORK/flwr  # a private Flower home: the connection below, nothing of the user's

PIDS=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

LINK_PORT=$(free_port)
"$BIN/flower-superlink" --insecure --host 127.0.0.1 --port "$LINK_PORT" \
    --disable-runtime-dependency-installation --database "$WORK/state.db" \
    >"$LOGS/superlink.log" 2>&1 &
PIDS+=($!)

# Wait for the SuperLink's HTTP API (GET /health), at most 60 s.
if ! "$PY" - "$LINK_PORT" <<'EOF'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/health"
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(url, timeout=2)
        sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit(1)
EOF
then
    echo "error: the SuperLink did not come up on 127.0.0.1:$LINK_PORT (see $LOGS/superlink.log)" >&2
    exit 1
fi

for ((i = 0; i < K; i++)); do
    "$BIN/flower-supernode" --insecure --superlink "127.0.0.1:$LINK_PORT" --port "$(free_port)" \
        --node-config "partition-id=$i num-partitions=$K" >"$LOGS/supernode-$i.log" 2>&1 &
    PIDS+=($!)
done

mkdir -p "$FLWR_HOME"
cat >"$FLWR_HOME/config.toml" <<EOF
[superlink]
default = "deploy"

[superlink.deploy]
address = "127.0.0.1:$LINK_PORT"
insecure = true
EOF

OVERRIDES="num_clients=$K $*"
rm -f "$OUT_DIR/results.json"
cd "$ROOT"
"$BIN/flwr" run . deploy --stream \
    --run-config "overrides='$OVERRIDES' output-dir='$OUT_DIR'" 2>&1 | tee "$LOGS/run.log"

if [[ ! -f $OUT_DIR/results.json ]]; then
    echo "error: the run wrote no results.json (see $LOGS/)" >&2
    exit 1
fi
echo "results: $OUT_DIR/results.json"
