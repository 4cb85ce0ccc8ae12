# The two commands a newcomer needs: `make demo` (a real sweep on this host) and `make test` (everything).
# Both create .venv and install what they need first, so they work on a fresh machine from a clean clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.farm-installed

.PHONY: demo test lint typecheck unit bench clean system-deps

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,quickstart,report,api]'
	touch $(STAMP)

system-deps:
	bash deploy/install-system-deps.sh

demo: $(STAMP)
	$(BIN)/farm run jobs/quickstart.yaml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: system-deps $(STAMP) lint typecheck
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest -m "not ray and not adb and not ssh and not prometheus and not llama and not browser"

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) farm-results .pytest_cache .mypy_cache .ruff_cache
