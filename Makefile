# The one interface for people and CI. Every target sets up what it needs: a fresh clone only
# needs python3.11 and a Rust toolchain.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .stamps
SNAPSHOTS ?= var/snapshots
DEMO_DATA ?= var/demo
DEMO_ITEMS ?= 100000
DEMO_USERS ?= 20000
PORT ?= 50051
RUST_SRC := $(shell find rust_core/src -name '*.rs' 2>/dev/null) rust_core/Cargo.toml Cargo.toml Cargo.lock

.PHONY: all setup serve test lint fmt proto bench bench-core bench-fairness bench-serve bench-quality bench-build bench-client clean

all: test

$(STAMPS)/deps: requirements.lock
	@mkdir -p $(STAMPS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	@touch $@

# Release build of the Rust extension, installed editable with the console scripts.
$(STAMPS)/ext: $(STAMPS)/deps $(RUST_SRC) pyproject.toml
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/maturin develop --release -q
	@touch $@

setup: $(STAMPS)/ext

# Serve the embedded demo catalogue (generated and built on first run) on localhost:$(PORT).
serve: setup
	@if [ -z "$$(ls -d $(SNAPSHOTS)/*/manifest.json 2>/dev/null)" ]; then \
	  echo "no snapshot in $(SNAPSHOTS): generating the demo catalogue ($(DEMO_ITEMS) items, $(DEMO_USERS) users)"; \
	  $(VENV)/bin/reelrank demo-data --items $(DEMO_ITEMS) --users $(DEMO_USERS) --seed 7 --out $(DEMO_DATA) && \
	  $(VENV)/bin/reelrank build --interactions $(DEMO_DATA)/interactions.csv --items $(DEMO_DATA)/items.csv --out $(SNAPSHOTS); \
	fi
	$(VENV)/bin/reelrank-server --snapshots $(SNAPSHOTS) --port $(PORT)

test: setup
	$(PY) proto/generate.py --check
	cargo test -q --manifest-path rust_core/Cargo.toml --no-default-features
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check server client tests proto bench
	$(VENV)/bin/ruff format --check server client tests proto bench
	$(PY) -m mypy server client
	$(PY) -m mypy.stubtest server._core
	cargo fmt --all --check
	cargo clippy -q --all-targets -- -D warnings

fmt: setup
	$(VENV)/bin/ruff format server client tests proto bench
	$(VENV)/bin/ruff check --fix server client tests proto bench
	cargo fmt --all

proto: $(STAMPS)/deps
	$(PY) proto/generate.py

bench-core: setup
	$(PY) bench/bench_core.py

# Fairness re-ranker: quality targets over 1,000 users and re-rank latency (bench/results/fairness.json).
bench-fairness: setup
	$(PY) bench/bench_fairness.py

# Rank on 1,000,000 synthetic items: pipeline latency, open/closed-loop load, memory (bench/results/serve.json).
bench-serve: setup
	$(PY) bench/bench_serve.py

# Ranking quality on MovieLens 100k (5 seeds, through Rank) and synthetic data (bench/results/quality.json).
bench-quality: setup
	$(PY) bench/bench_quality.py

# Offline build at 1,000,000 items / 200,000 users / ~10M interactions (bench/results/build.json).
bench-build: setup
	$(PY) bench/bench_build.py

# Load tester vs a plain grpc.aio client against an empty server: rate and CPU per request (bench/results/client.json).
bench-client: setup
	$(PY) bench/bench_client.py

bench: bench-core bench-fairness bench-serve bench-quality bench-client

clean:
	rm -rf $(STAMPS) target server/_core*.so
