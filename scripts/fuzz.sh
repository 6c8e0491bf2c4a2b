#!/usr/bin/env bash
# Runs every fuzz target of protocol/fuzz and server/fuzz for a bounded time each (default
# 30 s), starting from the committed seeds; `--build-only` builds them all and runs nothing
# (what `make test` does, so that no target rots; a plain cargo build, no cargo-fuzz needed). Runs
# need cargo-fuzz (installed if missing) and nightly features: RUSTC_BOOTSTRAP lets stable provide them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_ONLY=0
if [ "${1:-}" = "--build-only" ]; then
    BUILD_ONLY=1
    shift
fi
SECONDS_EACH=${1:-30}
if [ "$BUILD_ONLY" = 1 ]; then
    # Every target compiles and links against libFuzzer (a plain build: no cargo-fuzz to
    # install, no instrumentation, which only a run needs); `cargo fuzz run` builds its own.
    for crate in protocol/fuzz server/fuzz; do
        echo "fuzz: building every target of $crate" >&2
        (cd "$root/$crate" && cargo build --quiet --bins)
    done
    exit 0
fi
if ! cargo fuzz --version > /dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install --quiet --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
for crate in protocol/fuzz server/fuzz; do
    cd "$root/$crate"
    for target in $(cargo fuzz list); do
        mkdir -p "corpus/$target"
        echo "fuzz: $crate $target for ${SECONDS_EACH}s" >&2
        cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
            -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 2>&1 | grep -E "DONE|Done|==[0-9]+==|SUMMARY|panicked" || true
        # A crash leaves an artifact and a non-zero status.
        if ls "artifacts/$target"/crash-* > /dev/null 2>&1; then
            echo "fuzz: $crate $target found a crash: $(ls artifacts/$target/crash-*)" >&2
            exit 1
        fi
    done
done
