#!/usr/bin/env bash
# The chat page's end-to-end test in a real browser: Debian's chromium driven by
# playwright-core. Installs chromium (apt) and the npm packages when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
    echo "test-browser: installing Debian's chromium" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y chromium > /dev/null || {
        $SUDO apt-get update > /dev/null && $SUDO apt-get install -y chromium > /dev/null
    } || { echo "test-browser: cannot install chromium (apt-get install -y chromium)" >&2; exit 1; }
fi
command -v node > /dev/null || { echo "test-browser: node is missing (Node 20 is needed)" >&2; exit 1; }
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    (cd tests/browser && npm ci --no-audit --no-fund > /dev/null) ||
        { echo "test-browser: npm ci failed in tests/browser" >&2; exit 1; }
fi
cargo build --release --quiet -p server
cd tests/browser
timeout 300 node --test --test-reporter=spec chat_page.test.mjs
echo "test-browser: screenshots in target/browser/" >&2
