#!/usr/bin/env bash
# `flwr run . local` with nothing shared and nothing left behind.
#
#   scripts/flwr_run_local.sh [flwr run options...]
#   scripts/flwr_run_local.sh --federation-config "num-supernodes=2 client-resources-num-cpus=1" \
#       --run-config "overrides='stage2=none' output-dir='/tmp/fedfair-run'"
#
# Plain `flwr run . local` starts a local SuperLink (simulation runtime) on Flower's fixed ports
# 39091/39093 unless one already answers there, and leaves it running after it returns; a second
# `flwr run` on the machine, by anyone, then submits to that SuperLink. This wrapper gives the run a
# private FLWR_HOME and two ports the OS reports free (FLWR_LOCAL_SUPERLINK_HTTP_API_PORT,
# FLWR_LOCAL_CONTROL_API_PORT), runs `flwr run . local --stream "$@"` from the repository root, and
# then stops the SuperLink it started and its children (found by the private FLWR_HOME on their
# command line), also on failure or Ctrl-C. If the run did not start its own SuperLink (another
# process took the port in between), it says so and fails.
# Prints `local superlink: 127.0.0.1:<port>, private FLWR_HOME <dir>` first (stderr).
# Exit codes: flwr's own (0 done), 1 no own SuperLink, 2 bad usage, 130 interrupted.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
BIN=$("$PY" -c 'import os, sys; print(os.path.dirname(sys.executable))')
export PATH="$BIN:$PATH"  # flwr starts flower-superlink by name
[[ -x $BIN/flwr && -x $BIN/flower-superlink ]] \
    || { echo "error: flwr / flower-superlink not found next to $PY; install fedfair first" >&2; exit 2; }
for arg in "$@"; do
    case $arg in
        --federation|--federation=*|local|deploy|supergrid|.)
            echo "error: give only flwr run options; the app (.) and the connection (local) are fixed, got '$arg'" >&2
            exit 2 ;;
    esac
done

export FLWR_TELEMETRY_ENABLED=${FLWR_TELEMETRY_ENABLED:-0}
export FLWR_DISABLE_UPDATE_CHECK=${FLWR_DISABLE_UPDATE_CHECK:-1}
export RAY_USAGE_STATS_ENABLED=${RAY_USAGE_STATS_ENABLED:-0}
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=${FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION:-1}

export FLWR_HOME
FLWR_HOME=$(mktemp -d -t fedfair-flwr.XXXXXX)  # mode 0700; the default config.toml is created by flwr
read -r HTTP_PORT CONTROL_PORT <<<"$("$PY" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')"
export FLWR_LOCAL_SUPERLINK_HTTP_API_PORT=$HTTP_PORT FLWR_LOCAL_CONTROL_API_PORT=$CONTROL_PORT
echo "local superlink: 127.0.0.1:$HTTP_PORT, private FLWR_HOME $FLWR_HOME" >&2

descendants() {
    local kids
    kids=$(ps -eo pid=,ppid= | awk -v p="$1" '$2 == p {print $1}')
    for kid in $kids; do echo "$kid"; descendants "$kid"; done
}
own_superlinks() {  # the SuperLink(s) flwr started for this FLWR_HOME (its --log-file lies inside)
    ps -ww -eo pid=,args= | awk -v h="$FLWR_HOME/" 'index($0, "flower-superlink") && index($0, h) {print $1}'
}
FOUND=0
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local all=() pid
    for pid in $(own_superlinks); do FOUND=1; all+=("$pid" $(descendants "$pid")); done
    for pid in "${all[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((t = 0; t < 80; t++)); do
        local alive=0
        for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.25
    done
    for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    if ((!FOUND && status == 0)); then
        echo "error: flwr run did not start its own SuperLink on 127.0.0.1:$HTTP_PORT (another process took the port); run again" >&2
        status=1
    fi
    rm -rf "$FLWR_HOME"
    exit "$status"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

cd "$ROOT"
"$BIN/flwr" run . local --stream "$@"
