"""Against a real Prometheus (Debian's ``prometheus``): the production server, a Celery worker and
the PostgreSQL and Redis exporters are started and scraped with the committed scrape
configuration while a short purchase and scan load runs; then every dashboard panel's query and
every alert rule's expression is evaluated through Prometheus' HTTP API. Each returns data, the
rules evaluate without error, and the tickets sold Prometheus counted are those in the database.

Skipped when the binaries are not installed, unless REQUIRE_PROMETHEUS is set (as .ci/run does,
which installs them)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app.extensions import celery, db
from app.models import Order, Ticket
from ops.grafana.dashboards import panel_queries
from tests.support.builders import make_event, make_partner
from tests.support.gate import device, open_event
from tests.support.promql import metric_names
from tests.support.shop import APPROVED, CUSTOMER_PASSWORD, NO_FUNDS

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops" / "prometheus"
TOKEN = "live-prometheus-scrape-token"
BINARIES = ("prometheus", "prometheus-postgres-exporter", "prometheus-redis-exporter")

pytestmark = pytest.mark.slow


def _binaries() -> dict[str, str]:
    found = {name: shutil.which(name) for name in BINARIES}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        message = f"needs {', '.join(missing)} (Debian packages of the same names)"
        if os.environ.get("REQUIRE_PROMETHEUS"):
            pytest.fail(f"{message} and REQUIRE_PROMETHEUS is set")
        pytest.skip(message)
    return {name: str(path) for name, path in found.items()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Http:
    """JSON over HTTP to the server Prometheus scrapes (not the test client)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - loopback
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
            error.close()
        return status, json.loads(raw) if raw else None


def _wait_for(url: str, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback
                return
        except urllib.error.HTTPError:
            return  # it answers (401 is an answer)
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{what} did not start")


@pytest.fixture
def stack(app, tmp_path) -> Iterator[dict[str, Any]]:
    binaries = _binaries()
    database = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    redis_url = os.environ["REDIS_URL"]
    # Tasks other tests queued (nobody consumes them there) are not this worker's to run.
    redis.Redis.from_url(redis_url).delete(celery.conf.task_default_queue)
    ports = {name: _free_port() for name in ("web", "worker", "postgres", "redis", "prometheus")}
    env = {
        **os.environ,
        "DATABASE_URL": database.render_as_string(hide_password=False),
        "REDIS_URL": redis_url,
        "APP_ENV": "production",
        "SECRET_KEY": "test-secret-key-for-the-live-prometheus-0123456789",
        "METRICS_TOKEN": TOKEN,
        "METRICS_STATE_SECONDS": "1",
        "RATELIMIT_ENABLED": "false",
        "SESSION_COOKIE_SECURE": "false",
        "WAITING_ROOM_BURST": "1",
        "FAB_UPDATE_PERMS": "false",
        "LOG_LEVEL": "WARNING",
    }
    web_metrics, worker_metrics = tmp_path / "web-metrics", tmp_path / "worker-metrics"
    web_metrics.mkdir()
    worker_metrics.mkdir()
    dsn = database.set(drivername="postgresql").render_as_string(hide_password=False)
    dsn += ("&" if "?" in dsn else "?") + "sslmode=disable"
    log = (tmp_path / "processes.log").open("w")
    commands = {
        "web": (
            [sys.executable, "-m", "app.server"],
            {"BIND": f"127.0.0.1:{ports['web']}", "WEB_CONCURRENCY": "1", "WEB_THREADS": "4",
             "PROMETHEUS_MULTIPROC_DIR": str(web_metrics)},
        ),
        "worker": (
            [sys.executable, "-m", "celery", "-A", "app.tasks.worker", "worker", "--pool", "solo",
             "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
            {"WORKER_METRICS_PORT": str(ports["worker"]),
             "PROMETHEUS_MULTIPROC_DIR": str(worker_metrics)},
        ),
        "postgres": (
            [binaries["prometheus-postgres-exporter"],
             f"--web.listen-address=127.0.0.1:{ports['postgres']}"],
            {"DATA_SOURCE_NAME": dsn},
        ),
        "redis": (
            [binaries["prometheus-redis-exporter"], "-redis.addr", redis_url,
             "-web.listen-address", f"127.0.0.1:{ports['redis']}"],
            {},
        ),
    }  # fmt: skip
    processes: list[subprocess.Popen] = []
    try:
        for argv, extra in commands.values():
            processes.append(
                subprocess.Popen(argv, cwd=ROOT, env={**env, **extra}, stdout=log, stderr=log)
            )
        for name in ("web", "worker", "postgres", "redis"):
            _wait_for(f"http://127.0.0.1:{ports[name]}/metrics", name)
        config = _prometheus_config(tmp_path, ports)
        processes.append(
            subprocess.Popen(
                [binaries["prometheus"], f"--config.file={config}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{ports['prometheus']}"],
                stdout=log, stderr=log,
            )
        )  # fmt: skip
        prometheus = f"http://127.0.0.1:{ports['prometheus']}"
        _wait_for(prometheus + "/-/ready", "prometheus")
        _all_targets_up(prometheus, tmp_path / "processes.log")
        yield {"web": f"http://127.0.0.1:{ports['web']}", "prometheus": prometheus}
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def _prometheus_config(tmp_path: Path, ports: dict[str, int]) -> Path:
    """The committed scrape configuration, with this test's ports, files and a 1 s interval."""
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(OPS / name) for name in config["rule_files"]]
    config.pop("alerting", None)
    token = tmp_path / "bilheteria-metrics-token"
    token.write_text(TOKEN)
    job_ports = {"bilheteria-web": "web", "bilheteria-worker": "worker"}
    for job in config["scrape_configs"]:
        port = ports[job_ports.get(job["job_name"], job["job_name"])]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = prometheus + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        answer = json.loads(response.read())
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]


def _value(result: list[dict[str, Any]]) -> float:
    """The value of a one-series answer (-1 when there is none)."""
    return float(result[0]["value"][1]) if result else -1.0


def _all_targets_up(prometheus: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with urllib.request.urlopen(prometheus + "/api/v1/targets", timeout=5) as response:  # noqa: S310
            targets = json.loads(response.read())["data"]["activeTargets"]
        if len(targets) == 4 and all(t["health"] == "up" for t in targets):
            return
        time.sleep(0.5)
    pytest.fail(f"targets not all up: {targets}\n{log.read_text()[-3000:]}")


def _customer(http: Http, name: str) -> dict[str, str]:
    email = f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.com"
    status, _ = http.call(
        "POST", "/api/v1/customers/", {"name": name, "email": email, "password": CUSTOMER_PASSWORD}
    )
    assert status == 201
    status, login = http.call(
        "POST",
        "/api/v1/security/login",
        {"username": email, "password": CUSTOMER_PASSWORD, "provider": "db"},
    )
    assert status == 200
    return {"Authorization": f"Bearer {login['access_token']}"}


def _token(http: Http, number: str) -> str:
    status, body = http.call(
        "POST",
        "/sim-acquirer/v1/tokens",
        {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123", "holder_name": "Ana"},
    )
    assert status == 201, body
    return body["token"]


def _buy(http: Http, buyer: dict[str, str], event_id: int, section_id: int, card: str) -> Any:
    status, hold = http.call(
        "POST",
        "/api/v1/holds/",
        {"event_id": event_id, "section_id": section_id, "quantity": 2},
        buyer,
    )
    assert status == 201, hold
    return http.call(
        "POST",
        f"/api/v1/holds/{hold['result']['id']}/checkout",
        {"card_token": _token(http, card)},
        {**buyer, "Idempotency-Key": uuid.uuid4().hex},
    )


def _load(http: Http, app) -> None:
    """Purchases (paid and declined), a seat conflict, a cancellation, scans of every kind and a
    waiting room with people in line, through the server."""
    partner = make_partner("Aurora")
    event = open_event(partner, refund_window_hours=1)
    gate = device(partner, event)
    line = make_event(partner, "Big Night", rows=("A", "B"), seats=5)
    line.waiting_room_per_minute = 1
    line.publish()
    db.session.commit()
    section = event.sections[0].id
    ana, bia, caio = (_customer(http, name) for name in ("Ana", "Bia", "Caio"))
    status, paid = _buy(http, ana, event.id, section, APPROVED)
    assert status == 201, paid
    status, hers = _buy(http, bia, event.id, section, APPROVED)
    assert status == 201, hers
    assert _buy(http, caio, event.id, section, NO_FUNDS)[0] == 402
    with app.app_context():
        taken = db.session.scalars(
            select(Ticket.spot_id).where(Ticket.order_id == paid["result"]["id"])
        ).all()
    wanted = {"event_id": event.id, "spot_ids": list(taken)}
    assert http.call("POST", "/api/v1/holds/", wanted, caio)[0] == 409
    code = paid["result"]["tickets"][0]["code"]
    for scanned in (code, code, "not-a-code"):
        scan = {"code": scanned, "gate": "North", "nonce": uuid.uuid4().hex}
        assert http.call("POST", "/api/v1/checkin/scan", scan, gate)[0] == 200
    cancelled = http.call("POST", f"/api/v1/orders/{hers['result']['id']}/cancel", None, bia)
    assert cancelled[0] == 200, cancelled
    for buyer in (ana, bia, caio):
        assert http.call("POST", f"/api/v1/queue/{line.id}", None, buyer)[0] == 200
    celery.send_task("holds.release_expired")  # the worker runs one


def test_every_panel_and_alert_reads_data_and_tickets_sold_match_the_database(app, stack):
    http = Http(stack["web"])
    _load(http, app)
    with app.app_context():
        sold = db.session.scalar(
            select(func.count(Ticket.id))
            .join(Order, Order.id == Ticket.order_id)
            .where(Order.paid_at.is_not(None))
        )
    assert sold == 4
    prometheus = stack["prometheus"]
    deadline = time.monotonic() + 30
    counted: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        counted = _query(prometheus, "sum(bilheteria_tickets_sold_total)")
        tasks = _query(prometheus, 'sum(bilheteria_celery_task_runs_total{state="succeeded"})')
        if (
            counted
            and float(counted[0]["value"][1]) == sold
            and tasks
            and float(tasks[0]["value"][1]) >= 1
        ):
            break
        time.sleep(0.5)
    assert _value(counted) == sold
    time.sleep(3)  # a few more scrapes: every rate() has two samples in its window

    empty = [
        f"{q.dashboard} / {q.panel}: {q.expr}"
        for q in panel_queries(window="1m")
        if not _query(prometheus, q.expr)
    ]
    assert empty == []

    rules = yaml.safe_load((OPS / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    assert alerts
    unread = sorted(
        f"{rule['alert']}: {name}"
        for rule in alerts
        for name in metric_names(rule["expr"])
        if not _query(prometheus, f"count({name})")
    )
    assert unread == []
    for rule in alerts:
        _query(prometheus, rule["expr"])  # evaluates (firing or not)
    with urllib.request.urlopen(prometheus + "/api/v1/rules", timeout=10) as response:  # noqa: S310
        groups = json.loads(response.read())["data"]["groups"]
    evaluated = [r for g in groups for r in g["rules"]]
    assert len(evaluated) == len(alerts)
    assert [
        (r["name"], r["health"], r.get("lastError")) for r in evaluated if r["health"] != "ok"
    ] == []
