# The two commands: `make run` and `make test`. Both set everything up on first use.
SHELL := /bin/bash
# The first Python 3.12+ on PATH (pyenv shims honour .python-version).
PYTHON ?= $(shell for p in python3.12 python3.13 python3.14 python3 python; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' \
	2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test bench bench-scale lint format messages clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.12 or newer is required and was not found on PATH." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changes, so that re-running is fast.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[demo]"
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $@ $(VENV)/.installed

# Without real provider credentials, the calendar sandbox (a local Google and Microsoft) runs
# beside the site and CALENDAR_SANDBOX=true points the site at it; a real CalDAV server
# (Radicale, with a demo account) runs too, offered on the settings page.
run: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py seed_demo_calendar
	@pids=""; trap 'kill $$pids 2>/dev/null' EXIT; \
	export SITE_URL="$${SITE_URL:-http://$(HOST):$(PORT)}"; \
	if $(BIN)/python manage.py calendar_sandbox --needed; then \
		export CALENDAR_SANDBOX=true; \
		$(BIN)/python manage.py calendar_sandbox & pids="$$pids $$!"; \
		sleep 1; \
	fi; \
	if $(BIN)/python manage.py caldav_demo --needed; then \
		export CALDAV_DEMO_URL=http://127.0.0.1:5232/ CALDAV_DEMO_USERNAME=demo@caldav.test \
			CALDAV_DEMO_PASSWORD=demo-app-password; \
		$(BIN)/python manage.py caldav_demo & pids="$$pids $$!"; \
	fi; \
	$(BIN)/python manage.py sync_calendars --loop 60 & pids="$$pids $$!"; \
	echo; \
	echo "  Serving http://$(HOST):$(PORT)/"; \
	echo "  Learner: demo / demo     Staff (admin at /admin/): admin / admin"; \
	echo; \
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/pytest

# Import and export against the sandbox (benchmarks/README.md); BENCH_ARGS="--events 20000 --repeat 3".
bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/import_benchmark.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/export_benchmark.py $(EXPORT_BENCH_ARGS)

# Scale: 1,000 integrations synced by 2 Celery workers, the calendar page and API under load,
# and staff's availability views over a million imported events (benchmarks/README.md). Needs
# PostgreSQL, Redis and wrk, which `make bench` does not; SYNC_BENCH_ARGS="--integrations 200",
# LOAD_BENCH_ARGS="--duration 10", AVAILABILITY_BENCH_ARGS="--learners 200".
bench-scale: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/sync_benchmark.py $(SYNC_BENCH_ARGS)
	$(BIN)/python benchmarks/load_benchmark.py $(LOAD_BENCH_ARGS)
	$(BIN)/python benchmarks/availability_benchmark.py $(AVAILABILITY_BENCH_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Extract and compile translations (needs GNU gettext); the compiled .mo files are committed.
messages: $(VENV)/.installed-dev
	$(BIN)/python manage.py makemessages --locale fr --locale en --no-obsolete --ignore '.venv/*'
	$(BIN)/python manage.py compilemessages --ignore '.venv/*'

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
