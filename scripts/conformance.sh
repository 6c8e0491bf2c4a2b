#!/usr/bin/env bash
# Runs the Autobahn TestSuite (kosoku) both ways:
#   - server side: kosoku drives `server --mode echo` on a free loopback port, every case, 1-13
#     (12 and 13 are permessage-deflate);
#   - client side: kosoku serves the cases (`-m fuzzingserver`) and the protocol crate's client
#     example (`examples/client.rs --autobahn`) drives them, cases 1-10.
# Prints the count of each result per side, and fails unless every case of both is OK or
# INFORMATIONAL (0 FAILED, 0 NON-STRICT, nothing else).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
if [ ! -x "$VENV/bin/kosoku" ]; then
    echo "conformance: installing kosoku into $VENV" >&2
    python3 -m venv "$VENV" || { echo "conformance: python3 -m venv failed (need Python 3.10+ with venv)" >&2; exit 1; }
    "$VENV/bin/pip" install --quiet kosoku || { echo "conformance: pip install kosoku failed" >&2; exit 1; }
fi

cargo build --release --quiet -p server
cargo build --release --quiet -p fanout-websocket --example client
OUT=target/conformance
rm -rf "$OUT" && mkdir -p "$OUT"

PIDS=()
trap 'for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT

# Waits until a log line says `<what> ws://ADDRESS` and prints ADDRESS.
wait_for_address() {
    local log=$1 pattern=$2 address=""
    for _ in $(seq 1 200); do
        address=$(sed -n "s|.*$pattern ws://\([0-9.:]*\).*|\1|p" "$log" | head -n 1)
        [ -n "$address" ] && break
        sleep 0.05
    done
    echo "$address"
}

# Prints the results of one report index and fails unless every case is OK or INFORMATIONAL.
summarise() {
    python3 - "$1" "$2" <<'PY'
import collections, json, sys
side, path = sys.argv[1], sys.argv[2]
try:
    index = json.load(open(path))
except OSError as error:
    sys.exit(f"conformance ({side}): no report written ({error}); see the logs in target/conformance/")
counts = collections.Counter()
bad = []
for agent, cases in index.items():
    for case, result in sorted(cases.items()):
        counts[result["behavior"]] += 1
        if result["behavior"] not in ("OK", "INFORMATIONAL") or result.get("behaviorClose") not in ("OK", "INFORMATIONAL", None):
            bad.append(f"{case}: behavior={result['behavior']} close={result.get('behaviorClose')}")
total = sum(counts.values())
print(f"conformance ({side}): {total} cases: " + ", ".join(f"{count} {name}" for name, count in sorted(counts.items())))
if bad or total == 0:
    print(f"conformance ({side}): FAILED", *bad, sep="\n  ")
    sys.exit(1)
PY
}

status=0

# --- server side: kosoku drives our server ---
LOG="$OUT/server.log"
# Autobahn sends thousands of messages per second on one connection (9.x): the rate limit, a
# policy against floods and not part of RFC 6455, is off for this run. Every echo is compressed
# where permessage-deflate was agreed (threshold 0), so sections 12 and 13 test our deflater too.
./target/release/server --mode echo --listen 127.0.0.1:0 --max-message-size 16777216 \
    --max-message-rate 0 --compression-threshold 0 2> "$LOG" &
PIDS+=($!)
ADDRESS=$(wait_for_address "$LOG" "listening on")
[ -n "$ADDRESS" ] || { echo "conformance: the server did not start:" >&2; cat "$LOG" >&2; exit 1; }
echo "conformance: kosoku (every case, 12.* and 13.* included) against server --mode echo on $ADDRESS" >&2
timeout 900 "$VENV/bin/kosoku" -p 4 -o "$OUT/reports" "$ADDRESS" > "$OUT/kosoku.log" 2>&1 || true
summarise server "$OUT/reports/index.json" || status=1

# --- client side: kosoku serves the cases, the client example drives them ---
FUZZ_LOG="$OUT/fuzzingserver.log"
"$VENV/bin/kosoku" -m fuzzingserver -x '12.*' -x '13.*' -o "$OUT/client-reports" 127.0.0.1:0 > "$FUZZ_LOG" 2>&1 &
FUZZINGSERVER=$!
PIDS+=("$FUZZINGSERVER")
FUZZ_ADDRESS=$(wait_for_address "$FUZZ_LOG" "fuzzingserver listening on")
[ -n "$FUZZ_ADDRESS" ] || { echo "conformance: kosoku -m fuzzingserver did not start:" >&2; cat "$FUZZ_LOG" >&2; exit 1; }
echo "conformance: examples/client --autobahn against kosoku -m fuzzingserver -x '12.*' -x '13.*' on $FUZZ_ADDRESS" >&2
if ! timeout 900 ./target/release/examples/client --autobahn "ws://$FUZZ_ADDRESS" > "$OUT/client.log" 2>&1; then
    echo "conformance (client): the client example did not finish; see $OUT/client.log" >&2
    status=1
fi
# kosoku writes its reports and exits once the client has asked for them.
for _ in $(seq 1 200); do
    kill -0 "$FUZZINGSERVER" 2>/dev/null || break
    sleep 0.05
done
summarise client "$OUT/client-reports/index.json" || status=1

exit $status
