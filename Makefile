# Every target creates .venv and installs the pinned dependencies when they are missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
# The scimmy test server's Node packages; npm ci rewrites node_modules/.package-lock.json.
SCIMMY := src/headwater/testing/servers/scimmy
SCIMMY_STAMP := $(SCIMMY)/node_modules/.package-lock.json

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Everything the tests, linters and benchmarks need (the demo's extra included).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Only what the demo needs.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

# Without npm the scimmy server's tests are skipped (they fail under CI=true instead).
$(SCIMMY_STAMP): $(SCIMMY)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(SCIMMY) && npm ci --no-audit --no-fund --loglevel=error; \
	else \
		echo "npm not found: the scimmy SCIM server's tests will be skipped"; \
	fi

demo: $(DEMO_STAMP)
	$(BIN)/headwater demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest-xdist workers: one per core by default (docs/decisions/0042: four workers on two cores
# were slower on a quiet machine and starved the console sign-in test's throttled hashing past
# its one-minute window). Each worker has its own databases and downstream servers.
TEST_WORKERS ?= auto

# The rest runs on TEST_WORKERS workers; worksteal lets an idle worker take queued tests from a
# busy one, so no worker runs alone at the end. The browser suite runs in its own session:
# Playwright's sync API keeps an event loop running in the main thread for as long as the
# browser lives, which other tests' asyncio.run() cannot share.
test: lint typecheck $(SCIMMY_STAMP)
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal --ignore=tests/browser
	$(BIN)/pytest -q tests/browser

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(SCIMMY)/node_modules
