#!/usr/bin/env bash
# Runs every fuzz target of protocol/fuzz for a bounded time each (default 30 s), starting
# from the committed seeds. cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP lets the stable
# toolchain provide them.
set -euo pipefail
cd "$(dirname "$0")/../protocol/fuzz"
SECONDS_EACH=${1:-30}
if ! cargo fuzz --version > /dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install --quiet cargo-fuzz
fi
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    echo "fuzz: $target for ${SECONDS_EACH}s" >&2
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 2>&1 | grep -E "DONE|Done|==[0-9]+==|SUMMARY|panicked" || true
    # A crash leaves an artifact and a non-zero status.
    if ls "artifacts/$target"/crash-* > /dev/null 2>&1; then
        echo "fuzz: $target found a crash: $(ls artifacts/$target/crash-*)" >&2
        exit 1
    fi
done
