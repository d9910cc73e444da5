"""Shared fixtures: one migrated database per run (SQLite by default, PostgreSQL when
DATABASE_URL says so), emptied after every test; logged-in clients for each role."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask, has_app_context
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db
from app.services import ledger
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


def _database_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        name = make_url(url).database or ""
        if "test" not in name:
            raise pytest.UsageError(
                f"Refusing to run tests on database {name!r}: its name must contain 'test'."
            )
        return url
    return "sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="bilheteria-test-"), "test.db")


TEST_DATABASE_URL = _database_url()
IS_POSTGRES = TEST_DATABASE_URL.startswith("postgresql")


def config_for_tests(**extra: Any) -> dict[str, Any]:
    return {
        "APP_ENV": "test",
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": TEST_DATABASE_URL.replace(
            "postgresql://", "postgresql+psycopg://"
        ),
        "WTF_CSRF_ENABLED": False,
        "FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",
        "RATELIMIT_ENABLED": False,
        **extra,
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_POSTGRES:
        return
    if os.environ.get("REQUIRE_POSTGRES"):
        raise pytest.UsageError("REQUIRE_POSTGRES is set but the tests run on SQLite")
    skip = pytest.mark.skip(
        reason="needs PostgreSQL (row locks, real concurrency); set DATABASE_URL"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def app() -> Iterator[Flask]:
    from flask_migrate import upgrade

    from app.views.roles import sync_permissions

    app = create_app(config_for_tests())
    with app.app_context():
        if IS_POSTGRES:
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
