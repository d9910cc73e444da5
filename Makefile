# Bilheteria: `make run` (demo on an embedded PostgreSQL) and `make test` (whole suite) work on a
# fresh machine with only Python 3.11 and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FLASK_APP := app

.PHONY: run test test-fast test-js test-js-if-node install serve worker beat lint format migrate perms \
	demo clean dashboards translations cluster cluster-stop cluster-status test-cluster test-pgbouncer

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

PORT ?= 5000

## Demo: an embedded PostgreSQL (data in var/postgres, unless DATABASE_URL names a server), tasks
## in-process, demo data, http://127.0.0.1:$(PORT)
run: $(STAMP)
	$(BIN)/flask demo serve --host 127.0.0.1 --port $(PORT)

## Whole suite, on DATABASE_URL's PostgreSQL or a throwaway embedded one; REDIS_URL's Redis or a
## redis-server on PATH (see tests/conftest.py and .ci/run)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@$(MAKE) --no-print-directory test-js-if-node
	$(BIN)/pytest --ignore=tests/cluster $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-pgbouncer-if-installed
	@$(MAKE) --no-print-directory test-cluster

## The fast layer, in seconds: the unit tests and the rules against tests/cases/ (no database,
## no browser, no server started), and the JavaScript tests when node is on PATH
test-fast: $(STAMP)
	@$(MAKE) --no-print-directory test-js-if-node
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

## The gate page's JavaScript (gate-core.js) against the shared tables of tests/cases/ (Node 20+)
test-js:
	node --test tests/js/

test-js-if-node:
	@if command -v node >/dev/null 2>&1; then $(MAKE) --no-print-directory test-js; \
	else echo "SKIPPED test-js: node is not on PATH, so gate-core.js is not checked against tests/cases/"; fi

## Production-like: Granian (app/server.py), one process per core, against DATABASE_URL
serve: $(STAMP)
	rm -rf var/prometheus && mkdir -p var/prometheus
	$(BIN)/flask db upgrade
	$(BIN)/flask perms sync
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus APP_ENV=$${APP_ENV:-production} \
		$(BIN)/python -m app.server

## A Celery worker; its metrics on WORKER_METRICS_PORT (9540), summed over its pool processes
worker: $(STAMP)
	rm -rf var/prometheus-worker && mkdir -p var/prometheus-worker
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus-worker FAB_UPDATE_PERMS=false \
		$(BIN)/celery -A app.tasks.worker worker --loglevel INFO

beat: $(STAMP)
	$(BIN)/celery -A app.tasks.worker beat --loglevel INFO --schedule var/celerybeat-schedule

## Several nodes on this machine (README, "Several nodes"): HAProxy on CLUSTER_BIND (127.0.0.1:8080)
## over two web nodes, PgBouncer (transaction mode) over the cluster's own PostgreSQL, Redis, two
## Celery workers, one beat and Prometheus; data and logs in var/cluster. Needs Debian's haproxy,
## pgbouncer, redis-server and prometheus.
cluster: $(STAMP)
	$(BIN)/python -m ops.cluster start

cluster-stop: $(STAMP)
	$(BIN)/python -m ops.cluster stop

cluster-status: $(STAMP)
	$(BIN)/python -m ops.cluster status

## The concurrency tests once more, through PgBouncer in transaction mode (started in front of
## the tests' database, tests/support/database.py), as the cluster runs the app
test-pgbouncer: $(STAMP)
	TEST_THROUGH_PGBOUNCER=1 $(BIN)/pytest -m concurrency tests/integration $(PYTEST_ARGS)

test-pgbouncer-if-installed:
	@if command -v pgbouncer >/dev/null 2>&1 || test -x /usr/sbin/pgbouncer; then \
		$(MAKE) --no-print-directory test-pgbouncer; \
	elif [ "$$REQUIRE_CLUSTER" = 1 ]; then echo "pgbouncer is missing (REQUIRE_CLUSTER=1)"; exit 1; \
	else echo "SKIPPED test-pgbouncer: Debian's pgbouncer is not installed"; fi

## The fault tests against a cluster of their own (tests/cluster/): about 4 minutes here, stopped
## after CLUSTER_TEST_BUDGET seconds (900); they skip without Debian's haproxy, pgbouncer and
## redis-server (fail with REQUIRE_CLUSTER=1, as in CI)
CLUSTER_TEST_BUDGET ?= 900
test-cluster: $(STAMP)
	timeout --signal INT $(CLUSTER_TEST_BUDGET) $(BIN)/pytest -m cluster tests/cluster $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Our message catalog (app/translations/): extract the marked texts of app/ (babel.cfg), merge
## them into each language's .po, compile the .mo. Translate the .po's new entries (no fuzzy: a
## test fails on an empty or fuzzy pt_BR entry), then run it again; both files are committed
## (a test fails when the .mo is not the .po compiled).
TRANSLATIONS := app/translations
translations: $(STAMP)
	$(BIN)/pybabel -q extract -F babel.cfg -k lazy_gettext -k N_ --no-location \
		--sort-output --project Bilheteria -o $(TRANSLATIONS)/messages.pot app
	$(BIN)/pybabel -q update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) \
		--no-fuzzy-matching --ignore-obsolete --ignore-pot-creation-date --width 100
	$(BIN)/pybabel compile -d $(TRANSLATIONS) --statistics

## Rewrites the Grafana dashboards' JSON (ops/grafana/dashboards/) from ops/grafana/dashboards.py
dashboards: $(STAMP)
	$(BIN)/python -m ops.grafana.dashboards

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
