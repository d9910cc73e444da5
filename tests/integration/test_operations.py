"""Health probes, request ids in JSON logs and responses, Prometheus metrics."""

from __future__ import annotations

import json
import logging

from app import create_app
from tests.support.apps import config_for_tests


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_checks_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"]["database"] == "ok"


def test_readyz_keeps_the_node_in_rotation_while_only_redis_is_down_and_says_so(app, on_sale):
    """Sales work on the database: a balancer must not take every node out because Redis is
    down. The answer is 200, "degraded", naming Redis and what waits for it; and a purchase
    through that node succeeds."""
    from app.tasks import init_celery
    from tests.support.shop import buy

    broken = create_app(config_for_tests(REDIS_URL="redis://127.0.0.1:1/0"))
    try:
        client = broken.test_client()
        response = client.get("/readyz")
        assert response.status_code == 200
        body = response.get_json()
        assert body["status"] == "degraded"
        assert body["checks"]["redis"].startswith("error")
        assert body["checks"]["database"] == "ok"
        assert "sales" in body["degraded"]["redis"]
        with broken.app_context():
            assert buy(client, on_sale, 2)["status"] == "paid"
    finally:
        init_celery(app)  # building an app rebinds the shared Celery app: give it back


def test_readyz_answers_503_naming_the_database_when_it_is_unreachable(app):
    from app.tasks import init_celery

    nothing_listens = "postgresql+psycopg://postgres@127.0.0.1:1/bilheteria_test"
    broken = create_app(config_for_tests(SQLALCHEMY_DATABASE_URI=nothing_listens))
    init_celery(app)  # building an app rebinds the shared Celery app: give it back
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"].startswith("error")


def test_every_response_carries_a_request_id_and_keeps_a_valid_incoming_one(client):
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    forged = client.get("/healthz", headers={"X-Request-ID": "<script>" * 20})
    assert forged.headers["X-Request-ID"] != "<script>" * 20
    assert len(forged.headers["X-Request-ID"]) == 32


def test_log_lines_are_json_with_the_request_id(capfd):
    probe_app = create_app(config_for_tests(LOG_JSON=True))

    @probe_app.get("/_log_probe")
    def _log_probe() -> str:
        logging.getLogger("probe").warning("probe message")
        return "ok"

    probe_app.test_client().get("/_log_probe", headers={"X-Request-ID": "req-42"})
    lines = [line for line in capfd.readouterr().err.splitlines() if "probe message" in line]
    assert lines, "no log line captured"
    record = json.loads(lines[-1])
    assert record["message"] == "probe message"
    assert record["request_id"] == "req-42"
    assert record["level"] == "WARNING"


def test_migrating_keeps_the_apps_logging(app):
    # `flask demo serve` migrates and then serves: alembic's ini must not replace the app's
    # handlers and level (its WARN root level hid the demo's INFO lines).
    from flask_migrate import upgrade

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    with app.app_context():
        upgrade()
    assert root.level == level == logging.getLevelName(app.config["LOG_LEVEL"])
    assert root.handlers == handlers


def test_metrics_count_requests_by_endpoint(client):
    client.get("/healthz")
    client.get("/healthz")
    body = client.get("/metrics").get_data(as_text=True)
    line = next(
        line
        for line in body.splitlines()
        if line.startswith("flask_http_request_duration_seconds_count")
        and 'endpoint="ops.healthz"' in line
    )
    assert float(line.rsplit(" ", 1)[1]) >= 2
