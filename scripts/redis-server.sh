#!/usr/bin/env bash
# Makes sure redis-server (and redis-benchmark, redis-cli) are installed, from Debian's
# packages. `make test` runs it before the cluster tests; they start their own redis-server on
# a free loopback port. Fails loudly when it cannot install.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 && command -v redis-benchmark >/dev/null 2>&1; then
    exit 0
fi

echo "redis-server is missing: installing Debian's redis-server and redis-tools" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "error: redis-server is not installed and this user cannot run apt-get; install the redis-server package" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq redis-server redis-tools
fi
# The package starts a system service where systemd runs; the tests start their own.
if ! command -v redis-server >/dev/null 2>&1; then
    echo "error: redis-server is still missing after apt-get install" >&2
    exit 1
fi
redis-server --version
