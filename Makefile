# Two commands for a newcomer: `make run` and `make test`. Each installs what it needs first.
# Needs only python3 (>= 3.11), git and make; everything else comes from the lock file.

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
TEST_JOBS ?= 4
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install run test lint typecheck unit bench openapi clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# Bytecode is compiled once here: where PYTHONDONTWRITEBYTECODE is set (as in many container
# images) Python would otherwise compile every module from source at every start, which was
# two thirds of `backline create-user`'s time.
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet --compile-bytecode --python $(PYTHON)
	$(VENV)/bin/python -m compileall -q src
	touch $@

install: $(VENV)/.synced

run: install
	$(VENV)/bin/backline serve

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

# Most tests run in parallel (they wait on sockets more than they compute); those marked `slow`
# start processes or measure time, and run alone afterwards so that no neighbour skews them.
# Exit status 5 is pytest's "nothing selected", as when PYTEST_ARGS picks tests of one kind only.
unit: install
	$(VENV)/bin/pytest -n $(TEST_JOBS) -m "not slow" $(PYTEST_ARGS) || [ $$? = 5 ]
	$(VENV)/bin/pytest -m slow $(PYTEST_ARGS) || [ $$? = 5 ]

test: lint typecheck unit

# The OpenAPI document, published for review; tests/openapi fails when it is stale.
openapi: install
	$(VENV)/bin/python -m backline.apidoc docs/openapi.json

bench: install
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache
