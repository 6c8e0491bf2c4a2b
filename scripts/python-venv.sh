#!/usr/bin/env bash
# Makes sure the repository's Python venv (.venv) exists and holds what the integration tests
# run with it: `websockets`, for the wss:// chat test (tests/python/tls_chat.py). Quick when
# everything is there already; fails loudly when it cannot install.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
# The same range as bench/requirements.txt, so the bench and the tests share one venv.
WEBSOCKETS='websockets>=14,<16'

if [ ! -x "$VENV/bin/python" ]; then
    echo "python-venv: creating $VENV" >&2
    python3 -m venv "$VENV" ||
        { echo "python-venv: python3 -m venv failed (need Python 3.10+ with venv: apt-get install python3-venv)" >&2; exit 1; }
fi
if ! "$VENV/bin/python" -c 'import websockets' 2> /dev/null; then
    echo "python-venv: installing $WEBSOCKETS into $VENV" >&2
    "$VENV/bin/pip" install --quiet "$WEBSOCKETS" ||
        { echo "python-venv: pip install '$WEBSOCKETS' failed" >&2; exit 1; }
fi
"$VENV/bin/python" -c 'import websockets' ||
    { echo "python-venv: websockets still cannot be imported from $VENV" >&2; exit 1; }
