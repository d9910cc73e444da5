# Bilheteria: `make run` (demo on SQLite) and `make test` (whole suite) work on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FLASK_APP := app

.PHONY: run test install serve worker beat lint format migrate perms demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Demo on the embedded default: SQLite, tasks in-process, demo data, http://127.0.0.1:5000
run: $(STAMP)
	$(BIN)/flask db upgrade
	$(BIN)/flask perms sync
	$(BIN)/flask demo load --if-empty
	$(BIN)/flask run --host 127.0.0.1 --port 5000

## Whole suite; DATABASE_URL / REDIS_URL select PostgreSQL and Redis (see .ci/run)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(PYTEST_ARGS)

## Production-like: Granian (app/server.py), one process per core, against DATABASE_URL
serve: $(STAMP)
	rm -rf var/prometheus && mkdir -p var/prometheus
	$(BIN)/flask db upgrade
	$(BIN)/flask perms sync
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus APP_ENV=$${APP_ENV:-production} \
		$(BIN)/python -m app.server

worker: $(STAMP)
	FAB_UPDATE_PERMS=false $(BIN)/celery -A app.tasks.worker worker --loglevel INFO

beat: $(STAMP)
	$(BIN)/celery -A app.tasks.worker beat --loglevel INFO --schedule var/celerybeat-schedule

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
