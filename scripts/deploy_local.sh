#!/usr/bin/env bash
# Local deployment: one flower-superlink and K flower-supernode processes on 127.0.0.1 (node i gets
# partition-id=i), the fedfair app run against them with `flwr run . deploy`, results.json
# collected, and every process this script started (and their children) stopped again, also on
# failure or Ctrl-C.
#
#   scripts/deploy_local.sh [--insecure] K [hydra overrides...]
#   OUT_DIR=/tmp/run scripts/deploy_local.sh 2 stage2=none stage1.rho=0
#
# Secure by default (docs/DEPLOYMENT.md): a throwaway CA, a TLS certificate for 127.0.0.1/localhost
# and one EC key pair per SuperNode are generated into a private temp dir (mode 0700, keys 0600,
# deleted at the end); the SuperLink speaks TLS only and runs with --enable-supernode-auth; the K
# public keys are registered with `flwr supernode register`, so a SuperNode with any other key is
# refused. `--insecure` (or INSECURE=1) runs everything without TLS and without node authentication.
# Every port is chosen free by the OS and the Flower home is private, so several runs can share a machine.
#
# Prints the deployment (ports, CA, private dir) first and `results: <path>` last; process logs go to
# <OUT_DIR>/deploy-logs/. Exit codes: 0 done, 1 failed, 2 bad usage or the run ended with a fedfair
# error (bad input; fewer than strategy.min_clients clients answered), given on stderr in one line,
# 130 interrupted. A SuperNode that dies during the run is the run's business: with min_clients met
# it finishes without that partition (results.json "clients" says why).
# FEDFAIR_DEPLOY_HOLD=<file>: before `flwr run`, wait (at most 300 s) while <file> exists, so that a
# test or an operator can probe the running deployment.
set -euo pipefail

usage="usage: scripts/deploy_local.sh [--insecure] K [hydra overrides...]"
INSECURE=${INSECURE:-0}
if [[ ${1:-} == --insecure ]]; then INSECURE=1; shift; fi
[[ $INSECURE == 0 || $INSECURE == 1 ]] || { echo "error: INSECURE must be 0 or 1, got '$INSECURE'" >&2; exit 2; }
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

OUT_DIR=${OUT_DIR:-$ROOT/outputs/deploy/$(date +%Y-%m-%d_%H-%M-%S)-$$}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOGS=$OUT_DIR/deploy-logs
mkdir -p "$LOGS"
WORK=$(mktemp -d -t fedfair-deploy.XXXXXX)  # mode 0700: keys, state, the private Flower home
export FLWR_HOME=$WORK/flwr
CREDS=$WORK/creds

PIDS=()
alive() {  # a zombie (a child of ours not yet reaped, or one re-parented to init) counts as dead
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ -n $stat && $stat != Z* ]]
}
# Stop what we started: the processes and every descendant (flower-superexec, ClientApp/ServerApp
# processes), SIGTERM first, SIGKILL after 20 s. Descendants are listed before anything is signalled.
descendants() {
    local kids
    kids=$(ps -eo pid=,ppid= | awk -v p="$1" '$2 == p {print $1}')
    for kid in $kids; do echo "$kid"; descendants "$kid"; done
}
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local all=() pid
    for pid in "${PIDS[@]}"; do all+=("$pid" $(descendants "$pid")); done
    for pid in "${all[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((t = 0; t < 80; t++)); do
        local alive=0
        for pid in "${all[@]}"; do alive "$pid" && alive=1; done
        ((alive)) || break
        sleep 0.25
    done
    for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# K + 1 distinct free ports, all held open while the OS picks them.
read -r LINK_PORT NODE_PORTS <<<"$("$PY" - "$((K + 1))" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)"
read -r -a NODE_PORTS <<<"$NODE_PORTS"

if ((INSECURE)); then
    LINK_TLS=(--insecure)
    NODE_TLS=(--insecure)
    CONN_TLS="insecure = true"
    echo "deployment: superlink 127.0.0.1:$LINK_PORT, INSECURE (no TLS, any SuperNode may join), private dir $WORK"
else
    "$PY" "$ROOT/scripts/make_credentials.py" "$CREDS" --nodes "$K"
    LINK_TLS=(--ssl-ca-certfile "$CREDS/ca.crt" --ssl-certfile "$CREDS/server.pem"
              --ssl-keyfile "$CREDS/server.key" --enable-supernode-auth)
    NODE_TLS=(--root-certificates "$CREDS/ca.crt"  # the SuperLink's certificate is checked against the CA
              --ssl-ca-certfile "$CREDS/ca.crt" --ssl-certfile "$CREDS/server.pem"  # the node's own
              --ssl-keyfile "$CREDS/server.key")                                    # Runtime API: TLS too
    CONN_TLS="root-certificates = \"$CREDS/ca.crt\""
    echo "deployment: superlink 127.0.0.1:$LINK_PORT, TLS (CA $CREDS/ca.crt), SuperNode authentication on, private dir $WORK"
fi

"$BIN/flower-superlink" "${LINK_TLS[@]}" --host 127.0.0.1 --port "$LINK_PORT" \
    --disable-runtime-dependency-installation --database "$WORK/state.db" \
    >"$LOGS/superlink.log" 2>&1 &
PIDS+=($!)
LINK_PID=$!

# Wait (at most 60 s) until OUR SuperLink serves GET /health: it must still be alive and have logged
# its own bind, so a process of someone else's on the same port is never mistaken for it.
if ! "$PY" - "$LINK_PORT" "$LINK_PID" "$LOGS/superlink.log" "$([[ $INSECURE == 1 ]] || echo "$CREDS/ca.crt")" <<'EOF'
import os, ssl, sys, time, urllib.request
port, pid, log, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
scheme, ctx = ("https", ssl.create_default_context(cafile=ca)) if ca else ("http", None)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        with open(log) as f:
            bound = f"running on {scheme}://127.0.0.1:{port}" in f.read()
        urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/health", timeout=2, context=ctx)
        if bound:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(1)
EOF
then
    echo "error: the SuperLink did not come up on 127.0.0.1:$LINK_PORT (see $LOGS/superlink.log)" >&2
    exit 1
fi

mkdir -p "$FLWR_HOME"
cat >"$FLWR_HOME/config.toml" <<EOF
[superlink]
default = "deploy"

[superlink.deploy]
address = "127.0.0.1:$LINK_PORT"
$CONN_TLS
EOF

for ((i = 0; i < K; i++)); do
    NODE_AUTH=()
    if ((!INSECURE)); then
        "$BIN/flwr" supernode register "$CREDS/node-$i.pub" deploy --name "node-$i" >>"$LOGS/register.log" 2>&1 \
            || { echo "error: registering node $i failed (see $LOGS/register.log)" >&2; exit 1; }
        NODE_AUTH=(--auth-supernode-private-key "$CREDS/node-$i")
    fi
    "$BIN/flower-supernode" "${NODE_TLS[@]}" "${NODE_AUTH[@]}" --superlink "127.0.0.1:$LINK_PORT" \
        --port "${NODE_PORTS[$i]}" --node-config "partition-id=$i num-partitions=$K" \
        >"$LOGS/supernode-$i.log" 2>&1 &
    PIDS+=($!)
    disown $!  # a node that is killed is reported by the run (and its log), not by bash
done

# Wait (at most 90 s) until every SuperNode is connected (it logs its node ID); stop if one exits.
for ((t = 0; t < 360; t++)); do
    up=0
    for ((i = 0; i < K; i++)); do
        alive "${PIDS[$((i + 1))]}" \
            || { echo "error: SuperNode $i exited (see $LOGS/supernode-$i.log)" >&2; exit 1; }
        grep -q "SuperNode ID:" "$LOGS/supernode-$i.log" && up=$((up + 1))
    done
    ((up == K)) && break
    sleep 0.25
done
((up == K)) || { echo "error: only $up of $K SuperNodes connected within 90 s (see $LOGS/)" >&2; exit 1; }

if [[ -n ${FEDFAIR_DEPLOY_HOLD:-} ]]; then
    echo "holding: $K SuperNodes connected; waiting while $FEDFAIR_DEPLOY_HOLD exists"
    for ((t = 0; t < 1200; t++)); do
        [[ -e $FEDFAIR_DEPLOY_HOLD ]] || break
        sleep 0.25
    done
fi

OVERRIDES="num_clients=$K $*"
rm -f "$OUT_DIR/results.json"
cd "$ROOT"
"$BIN/flwr" run . deploy --stream \
    --run-config "overrides='$OVERRIDES' output-dir='$OUT_DIR'" 2>&1 | tee "$LOGS/run.log"

if [[ ! -f $OUT_DIR/results.json ]]; then
    # The ServerApp ends a fedfair error with one line `error: ...` in the run's log: pass it on.
    reason=$(sed 's/\x1b\[[0-9;]*m//g' "$LOGS/run.log" | sed -n 's/^ERROR *: *\(error: .*\)/\1/p' | head -n 1)
    if [[ -n $reason ]]; then
        echo "$reason" >&2
        exit 2
    fi
    echo "error: the run wrote no results.json (see $LOGS/)" >&2
    exit 1
fi
echo "results: $OUT_DIR/results.json"
