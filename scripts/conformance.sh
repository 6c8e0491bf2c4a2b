#!/usr/bin/env bash
# Runs every Autobahn TestSuite case, 1-13 (kosoku; 12 and 13 are permessage-deflate), against `server --mode echo` on a free
# loopback port, prints the count of each result, and fails unless every case is OK or
# INFORMATIONAL.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
if [ ! -x "$VENV/bin/kosoku" ]; then
    echo "conformance: installing kosoku into $VENV" >&2
    python3 -m venv "$VENV" || { echo "conformance: python3 -m venv failed (need Python 3.10+ with venv)" >&2; exit 1; }
    "$VENV/bin/pip" install --quiet kosoku || { echo "conformance: pip install kosoku failed" >&2; exit 1; }
fi

cargo build --release --quiet -p server
OUT=target/conformance
rm -rf "$OUT" && mkdir -p "$OUT"
LOG="$OUT/server.log"
# Autobahn sends thousands of messages per second on one connection (9.x): the rate limit, a
# policy against floods and not part of RFC 6455, is off for this run. Every echo is compressed
# where permessage-deflate was agreed (threshold 0), so sections 12 and 13 test our deflater too.
./target/release/server --mode echo --listen 127.0.0.1:0 --max-message-size 16777216 \
    --max-message-rate 0 --compression-threshold 0 2> "$LOG" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    ADDRESS=$(sed -n 's|.*listening on ws://\([0-9.:]*\)/.*|\1|p' "$LOG")
    [ -n "$ADDRESS" ] && break
    sleep 0.05
done
[ -n "${ADDRESS:-}" ] || { echo "conformance: the server did not start:" >&2; cat "$LOG" >&2; exit 1; }

echo "conformance: kosoku (every case, 12.* and 13.* included: permessage-deflate) against server --mode echo on $ADDRESS" >&2
timeout 900 "$VENV/bin/kosoku" -p 4 -o "$OUT/reports" "$ADDRESS" > "$OUT/kosoku.log" 2>&1 || true

python3 - "$OUT/reports/index.json" <<'PY'
import collections, json, sys
try:
    index = json.load(open(sys.argv[1]))
except OSError as error:
    sys.exit(f"conformance: no report written ({error}); see target/conformance/kosoku.log")
counts = collections.Counter()
bad = []
for agent, cases in index.items():
    for case, result in sorted(cases.items()):
        counts[result["behavior"]] += 1
        if result["behavior"] not in ("OK", "INFORMATIONAL") or result.get("behaviorClose") not in ("OK", "INFORMATIONAL", None):
            bad.append(f"{case}: behavior={result['behavior']} close={result.get('behaviorClose')}")
total = sum(counts.values())
print(f"conformance: {total} cases: " + ", ".join(f"{count} {name}" for name, count in sorted(counts.items())))
if bad or total == 0:
    print("conformance: FAILED", *bad, sep="\n  ")
    sys.exit(1)
PY
