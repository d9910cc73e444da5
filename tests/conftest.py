"""Shared fixtures: one migrated PostgreSQL database per run, emptied after every test;
logged-in clients for each role.

The database is DATABASE_URL's (CI names its server) or, when that is unset, a throwaway
embedded PostgreSQL started for the session (app/local_postgres.py): every test, the locking and
concurrency ones included, runs on the dialect production runs. Redis is REDIS_URL's or, when
that is unset, a redis-server on PATH started on a free port for the session; tests that need it
skip with the reason otherwise.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask, has_app_context
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db
from app.services import ledger, purchase
from tests.support import make_event, make_partner, make_user

DOMAIN_TABLES = [
    "waiting_entry",
    "waiting_line",
    "report",
    "payout_item",
    "payout",
    "settlement_mismatch",
    "settlement_line",
    "settlement",
    "settlement_day",
    "sim_acquirer_chargeback",
    "sim_acquirer_refund",
    "sim_acquirer_charge",
    "sim_acquirer_token",
    "checkin",
    "checkin_entry",
    "gate_device_event",
    "gate_device",
    "gate_assignment",
    "ticket",
    "payment_refund",
    "ledger_entry",
    "ledger_transaction",
    "ledger_account",
    "payment",
    '"order"',
    "event_spot",
    "hold",
    "event_section",
    "event",
    "customer",
    "ab_user_role",
    "ab_user",
    "partner",
]


@functools.cache
def database_url_for_tests() -> str:
    """The test database's SQLAlchemy URL (a server is started on first use when none is named)."""
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        name = make_url(url).database or ""
        if "test" not in name:
            raise pytest.UsageError(
                f"Refusing to run tests on database {name!r}: its name must contain 'test'."
            )
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    from app import local_postgres

    data_dir = Path(tempfile.mkdtemp(prefix="bilheteria-test-")) / "pg"
    return local_postgres.start(data_dir, "bilheteria_test", throwaway=True)


_redis_server: subprocess.Popen[bytes] | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Without REDIS_URL, a redis-server on PATH is started for the session (nothing on disk)."""
    global _redis_server
    server = shutil.which("redis-server")
    if os.environ.get("REDIS_URL") or server is None:
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _redis_server = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    os.environ["REDIS_URL"] = url


def pytest_unconfigure(config: pytest.Config) -> None:
    if _redis_server is not None:
        _redis_server.terminate()
        _redis_server.wait(timeout=10)


def config_for_tests(**extra: Any) -> dict[str, Any]:
    return {
        "APP_ENV": "test",
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url_for_tests(),
        "WTF_CSRF_ENABLED": False,
        "FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",
        "RATELIMIT_ENABLED": False,
        **extra,
    }


@pytest.fixture(scope="session")
def app() -> Iterator[Flask]:
    from flask_migrate import upgrade

    from app.views.roles import sync_permissions

    app = create_app(config_for_tests())
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        sync_permissions(app.appbuilder)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def db_context(app: Flask) -> Iterator[None]:
    """An app context for the test; every domain row is deleted afterwards."""
    with app.app_context():
        yield
        empty_domain_tables(app)


def empty_domain_tables(app: Flask) -> None:
    """Delete every domain row and what caches them (in an app context)."""
    db.session.rollback()
    db.session.remove()
    with db.engine.begin() as conn:
        for table in DOMAIN_TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
    ledger.forget_account_ids()
    purchase.sold_out.forget()
    forget_checkin_state(app)


def forget_checkin_state(app: Flask) -> None:
    """Gate check-in keeps armed events in Redis, keyed by ids the next test reuses: drop them."""
    from app.services import checkin

    checkin.forget_fast_keys()
    url = app.config.get("REDIS_URL")
    if url:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter("ck:*"))
        if keys:
            client.delete(*keys)


class IsolatedClient(FlaskClient):
    """Each request runs in its own app context (its own ``g`` and database session), as in
    production; the test's session then ends its transaction so it reads what the request wrote."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        if has_app_context():
            db.session.rollback()
            db.session.expire_all()  # rollback expires nothing when no transaction was open
        return response


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = IsolatedClient
    return app.test_client()


@pytest.fixture
def two_partners() -> dict[str, Any]:
    """Partner A (user alice, gate user gina) with an event; partner B (user bob) with one."""
    a = make_partner("Partner A")
    b = make_partner("Partner B")
    make_user("alice", "Partner", a)
    make_user("bob", "Partner", b)
    make_user("gina", "Gate", a)
    make_user("root", "Admin")
    make_user("fiona", "Finance")
    event_a = make_event(a, "A Concert")
    event_b = make_event(b, "B Concert")
    return {"a": a, "b": b, "event_a": event_a, "event_b": event_b}
