#!/usr/bin/env bash
# One chat server process per core on one port (SO_REUSEPORT: the kernel spreads connections
# over them), joined by a local redis-server so that a room spans every process.
#   scripts/run-cluster.sh [LISTEN] [PROCESSES]      (defaults: 127.0.0.1:8080, nproc)
# REDIS_PORT (default 6380) is where its redis-server listens; extra server options go in
# SERVER_ARGS. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

LISTEN="${1:-127.0.0.1:8080}"
PROCESSES="${2:-$(nproc)}"
REDIS_PORT="${REDIS_PORT:-6380}"

./scripts/redis-server.sh >/dev/null
cargo build --release --quiet -p server

pids=()
stop() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    echo "cluster stopped"
}
trap stop INT TERM EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --loglevel warning &
pids+=("$!")
for _ in $(seq 50); do
    if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then break; fi
    sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping >/dev/null || { echo "error: redis-server did not start on $REDIS_PORT" >&2; exit 1; }

for index in $(seq "$PROCESSES"); do
    # shellcheck disable=SC2086
    target/release/server --listen "$LISTEN" --reuse-port \
        --redis "redis://127.0.0.1:$REDIS_PORT" ${SERVER_ARGS:-} &
    pids+=("$!")
done
echo "cluster: $PROCESSES server process(es) on ws://$LISTEN/ sharing rooms through redis on 127.0.0.1:$REDIS_PORT; Ctrl-C stops it"
wait
