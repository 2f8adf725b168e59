# onec-sync — the front door. `make demo` shows the sync working; `make test` is what CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
export MOTO_SERVER := $(abspath $(VENV))/bin/moto_server
export PATH := $(abspath $(VENV))/bin:$(PATH)

-include infra/infra.mk

.PHONY: help setup fmt lint test emulator build validate deploy demo chaos clean bench fuzz

help: ## List the targets
	@grep -hE '^[a-zA-Z_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: tools/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r tools/requirements.txt
	touch $@

setup: $(VENV)/.installed ## Install the tools the tests need (moto server, cfn-lint, SAM translator, cargo-lambda, xmllint)
	@command -v xmllint >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq libxml2-utils >/dev/null; \
	  else echo "xmllint missing: install libxml2-utils (CommerceML schema tests need it)"; exit 1; fi; }

fmt: ## Format the code
	cargo fmt --all

lint: ## rustfmt check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test: setup ## Every test: unit, handler, 1C emulator, moto integration
	cargo test --workspace --all-targets

demo: setup ## The whole sync locally: moto, 1C emulator, real handlers, 300 users, checked report (ARGS="--users 50 --transport odata --keep")
	cargo run -q -p local-stack --bin local-stack -- demo $(ARGS)

chaos: setup ## 2,000 customers under 1C faults, an outage and out-of-order redelivery; prints the figures (ARGS="--customers 500 --seed 1")
	cargo run -q -p local-stack --bin chaos -- $(ARGS)

# Figures go to docs/benchmarks.md, each benchmark between its own markers. Takes ~30 min on 2 cores
# (release builds, native for timing, arm64 for sizes); never part of `make test`.
BENCH := cargo run --quiet --profile bench-tool -p bench --
bench: setup ## Benchmarks of every stage against its limit → docs/benchmarks.md
	cargo bench -p shared --bench filter --bench mapper
	$(BENCH) micro
	cargo bench -p onec-emulator --bench batch_throughput  # figures for "Batch calls to 1C", by hand
	cargo build --release $(addprefix -p ,$(LAMBDA_FNS)) --bins
	cargo lambda build --release --arm64 $(addprefix -p ,$(LAMBDA_FNS))
	$(BENCH) replay
	$(BENCH) cold-start
	$(BENCH) throughput
	$(BENCH) e2e
	$(BENCH) full-sync
	$(BENCH) cost

emulator: ## Run the 1C emulator by hand on 127.0.0.1:8081
	cargo run -p onec-emulator -- --port 8081

FUZZ_SECONDS ?= 60
CARGO_FUZZ  := $(abspath .tools)/bin/cargo-fuzz

$(CARGO_FUZZ):
	cargo install cargo-fuzz --locked --root $(abspath .tools)

fuzz: $(CARGO_FUZZ) ## Every fuzz target for FUZZ_SECONDS each (default 60; stable toolchain, no sanitizer)
	PATH="$(abspath .tools)/bin:$$PATH" FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run-all.sh

clean: ## Remove build output and the venv
	cargo clean
	rm -rf $(VENV)
