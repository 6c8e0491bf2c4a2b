#!/usr/bin/env bash
# Builds and installs everything `make bench` needs: our binaries in release mode, the Rust
# peers (and the flooder), the Node `ws` peer's packages, Bun (uWebSockets) from npm, and a
# Python venv with websockets and matplotlib. The TLS rows' test certificate is made by run.py.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v taskset > /dev/null || { echo "bench: taskset is missing (util-linux)" >&2; exit 1; }
command -v node > /dev/null || { echo "bench: node is missing (Node.js 20 is needed for the ws peer)" >&2; exit 1; }
command -v openssl > /dev/null || { echo "bench: openssl is missing (it makes the TLS rows' test certificate)" >&2; exit 1; }
cargo build --release --quiet -p server -p loadgen
cargo build --release --quiet --manifest-path bench/peers/rust/Cargo.toml
(cd bench/peers/node-ws && npm ci --no-audit --no-fund --silent)
# Bun ships its binary inside the npm package (the platform's @oven/bun-* optional dependency).
(cd bench/peers/bun && npm ci --no-audit --no-fund --silent)
bench/peers/bun/node_modules/.bin/bun --version > /dev/null || { echo "bench: bun did not install (bench/peers/bun)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv || { echo "bench: python3 -m venv failed" >&2; exit 1; }
fi
.venv/bin/pip install --quiet -r bench/requirements.txt
