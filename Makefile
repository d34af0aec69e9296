# The two commands (see README): `make run` and `make test`. Both set themselves up.
SHELL       := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup run test lint redis postgres chromium clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/goalstore serve

# Integration and end-to-end tests talk to a real Redis on 127.0.0.1:6379.
redis:
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || \
	  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
	@for i in 1 2 3 4 5 6 7 8 9 10; do \
	  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && exit 0; sleep 0.5; done; \
	  echo "redis did not start on 127.0.0.1:6379" >&2; exit 1

# ...and a real PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres): each test run
# creates a database of its own there and drops it at the end.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
	  { command -v pg_ctlcluster >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql; }; \
	    pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | sort -V | tail -1) main start; }
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 0.5; done; \
	  echo "postgresql did not start on 127.0.0.1:5432" >&2; exit 1

# ...and Debian's chromium at /usr/bin/chromium, which the browser tier (tests/browser)
# drives through Playwright: no browser download of Playwright's own.
chromium:
	@test -x /usr/bin/chromium || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

lint: $(STAMP)
	$(BIN)/ruff check service workers tests examples
	$(BIN)/ruff format --check service workers tests examples
	$(BIN)/mypy

# Lint, types, every test tier with coverage, then the per-part coverage floors.
test: $(STAMP) redis postgres chromium lint
	rm -f .coverage .coverage.*
	$(BIN)/pytest --cov --cov-report= -p no:cacheprovider | tee .pytest.log
	$(BIN)/coverage report
	@echo "store floor (90%):"
	$(BIN)/coverage report --fail-under=90 --include='service/store/*,service/commands/*,service/domain/*'
	@echo "API floor (80%):"
	$(BIN)/coverage report --fail-under=80 --include='service/api/*'
	@tail -n 1 .pytest.log  # the test count, last, where CI reads it

clean:
	rm -rf $(VENV) .coverage .coverage.* .pytest.log .mypy_cache .ruff_cache .pytest_cache artifacts
