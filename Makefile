# The two commands: `make run` and `make test`. Everything else is what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: run test install install-test system-packages node-deps lint bench bench-sustained mutate clean

run: install
	$(BIN)/permachat migrate
	$(BIN)/permachat serve

test: install-test system-packages node-deps
	$(BIN)/pytest $(PYTEST_ARGS)

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

# From Debian's packages: Chromium for the browser tests (Playwright cannot download browsers
# offline) and nginx for the replica deployment test (deploy/nginx.conf, run on its own ports).
system-packages:
	@{ command -v chromium && { command -v nginx || [ -x /usr/sbin/nginx ]; }; } >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium nginx-light; }

# arlocal (a real Arweave node for tests), pinned by the committed lock file.
node-deps:
	@if [ -f package-lock.json ]; then \
		if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
			npm ci --no-audit --no-fund; fi; fi

lint: install-test
	$(BIN)/ruff check .

bench: install-test
	$(BIN)/python bench/gateway.py --seconds 4

bench-sustained: install-test
	$(BIN)/python bench/sustained.py

# Mutation testing of the money modules (slow, not in CI); the surviving mutants are listed at the end.
mutate: install-test
	$(BIN)/pip install --quiet 'mutmut>=3.8,<4'
	$(BIN)/mutmut run || true
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) node_modules .pytest_cache mutants
