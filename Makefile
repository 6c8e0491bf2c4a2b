# The project's commands. `make test` is what CI runs (.ci/run); it installs what it needs.
.PHONY: all build test unit conformance test-browser fmt fmt-check lint msrv-check doc fuzz fuzz-build bench bench-quick bench-setup bench-protocol soak run run-cluster redis-setup clean

CARGO ?= cargo
FUZZ_SECONDS ?= 30

all: build

build:
	$(CARGO) build --workspace --release

## test: formatting, clippy and the declared rust-version, the API docs, every unit and
## integration test (the core fuzz target's seeds replayed among them), every fuzz target built,
## the Autobahn conformance run, and the chat page in a real browser.
test: fmt-check lint doc unit fuzz-build conformance test-browser

unit: redis-setup
	./scripts/python-venv.sh
	$(CARGO) test --workspace

## redis-setup: installs Debian's redis-server if missing (the cluster tests start their own).
redis-setup:
	./scripts/redis-server.sh

conformance:
	./scripts/conformance.sh

test-browser:
	./scripts/browser-test.sh

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

## lint: clippy, whose incompatible_msrv lint finds standard library items newer than the
## declared rust-version (tests included: clippy.toml), after msrv-check.
lint: msrv-check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## msrv-check: no dependency in Cargo.lock, no syntax we know of, needs a newer Rust than the
## declared rust-version, and incompatible_msrv is not silenced (scripts/msrv-check.py; a second).
msrv-check:
	python3 scripts/msrv-check.py

## doc: the API docs build without a warning (broken links included).
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

## fuzz: every fuzz target (protocol/fuzz, server/fuzz) for FUZZ_SECONDS each (cargo-fuzz,
## installed if missing).
fuzz:
	./scripts/fuzz.sh $(FUZZ_SECONDS)

## fuzz-build: builds every fuzz target without running it, so that none rots (cargo-fuzz,
## installed if missing; RUSTC_BOOTSTRAP=1 on stable).
fuzz-build:
	./scripts/fuzz.sh --build-only

## bench: our server against the peers, driven by loadgen; writes bench-results/ (about 22 min).
bench: bench-setup
	.venv/bin/python bench/run.py

## bench-quick: a small subset of the same, about 2.5 minutes.
bench-quick: bench-setup
	.venv/bin/python bench/run.py --quick --out target/bench-quick

bench-setup:
	./bench/setup.sh

bench-protocol:
	$(CARGO) bench -p fanout-websocket --bench throughput

## soak: 10,000 connections with churn for 10 minutes (not part of make test); writes
## bench-results/soak.json. SOAK_MINUTES=1 for a short one.
SOAK_MINUTES ?= 10
soak:
	$(CARGO) build --release --quiet -p server -p loadgen
	python3 bench/soak.py --minutes $(SOAK_MINUTES)

## run: the chat server on 127.0.0.1:8080 (open http://127.0.0.1:8080/ in a browser).
run:
	$(CARGO) run --release -p server -- --listen 127.0.0.1:8080 --history 100

## run-cluster: one server process per core on 127.0.0.1:8080 (--reuse-port), rooms shared
## through a local redis-server on port 6380; Ctrl-C stops all of them. CLUSTER_LISTEN,
## CLUSTER_PROCESSES and REDIS_PORT change the defaults.
CLUSTER_LISTEN ?= 127.0.0.1:8080
CLUSTER_PROCESSES ?= $(shell nproc)
run-cluster:
	REDIS_PORT=$(or $(REDIS_PORT),6380) ./scripts/run-cluster.sh $(CLUSTER_LISTEN) $(CLUSTER_PROCESSES)

clean:
	$(CARGO) clean
