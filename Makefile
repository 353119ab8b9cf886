# keystile — `make help` lists the targets. Needs only Python 3.11+ and make: uv is bootstrapped into .tools/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv
RUN := $(UV) run --frozen --quiet
PYTEST_WORKERS ?= auto

.PHONY: help demo serve test check lint types fmt unit bench soak clean deps node-deps browser-deps

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "keystile needs Python 3.11 or newer")'
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv

.venv/.synced: $(UV) pyproject.toml uv.lock
	@$(UV) sync --frozen --quiet
	@touch $@

deps: .venv/.synced ## install the Python dependencies (uv.lock) into .venv

demo: deps ## the whole flow on one machine: control plane, built-in IdP, gateway, sample upstream (Ctrl-C stops)
	@$(RUN) keystile demo

serve: deps ## run the control plane on the defaults (SQLite in ./keystile-data)
	@$(RUN) keystile serve

check: lint types ## lint and type-check

lint: deps
	@$(RUN) ruff check src tests bench
	@$(RUN) ruff format --check src tests bench

types: deps
	@$(RUN) mypy

fmt: deps ## format the code
	@$(RUN) ruff format src tests bench
	@$(RUN) ruff check --fix src tests bench

node-deps:
	@if [ -f tests/idp/package-lock.json ]; then npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error; fi

browser-deps:
	@if [ -n "$$(ls tests/e2e/test_*browser*.py 2>/dev/null)" ] && ! command -v chromium >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "could not install chromium: browser tests will skip (or fail with KEYSTILE_REQUIRE_ALL=1)"; \
	fi

test: check node-deps browser-deps ## lint, types, migrations check and the whole test suite
	@$(RUN) pytest -n $(PYTEST_WORKERS) --dist loadgroup -q

unit: deps ## the test suite without lint (faster loop)
	@$(RUN) pytest -n $(PYTEST_WORKERS) --dist loadgroup -q

bench: deps ## benchmarks (see bench/README.md)
	@for b in bench/*.py; do [ "$$b" = bench/soak.py ] && continue; echo "== $$b"; $(RUN) python $$b || exit 1; done

soak: deps ## soak the whole flow against `keystile demo` (10 minutes; MINUTES=2 for a short run)
	@$(RUN) python bench/soak.py --minutes $(or $(MINUTES),10)

clean: ## remove caches and local state
	rm -rf .venv $(TOOLS) .pytest_cache .mypy_cache .ruff_cache keystile-data keystile-gateway keystile-demo test-artifacts
