"""The tests' PostgreSQL: DATABASE_URL's (CI names its server) or, when that is unset, a throwaway
embedded server started on first use (app/local_postgres.py), so a run that never asks for the
database (the unit tests) never starts one; the domain tables, emptied after every test."""

from __future__ import annotations

import atexit
import functools
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from flask import Flask
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url

from app.extensions import db
from app.services import ledger, purchase

T = TypeVar("T")

DOMAIN_TABLES = [
    "webhook_delivery",
    "webhook_endpoint",
    "mail_outbox",
    "password_reset",
    "audit_entry",
    "waitlist_entry",
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
    "promo_code",
    "ticket_type",
    "event_section",
    "event",
    "customer",
    "login_session",
    "ab_user_role",
    "ab_user",
    "partner",
]


@functools.cache
def database_url_for_tests() -> str:
    """The test database's SQLAlchemy URL (a server is started on first use when none is named);
    with TEST_THROUGH_PGBOUNCER=1, a PgBouncer's in transaction mode in front of it."""
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        name = make_url(url).database or ""
        if "test" not in name:
            raise pytest.UsageError(
                f"Refusing to run tests on database {name!r}: its name must contain 'test'."
            )
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    else:
        from app import local_postgres

        data_dir = Path(tempfile.mkdtemp(prefix="bilheteria-test-")) / "pg"
        url = local_postgres.start(data_dir, "bilheteria_test", throwaway=True)
    if os.environ.get("TEST_THROUGH_PGBOUNCER") == "1":
        return _through_pgbouncer(url)
    return url


def _through_pgbouncer(url: str) -> str:
    """Start PgBouncer (transaction mode, as ops/cluster.py runs it) in front of ``url``'s
    database for the session and return the URL that goes through it; the app then runs as
    it does behind PgBouncer (DB_PGBOUNCER: no prepared statements, no startup options)."""
    from ops.cluster import ClusterError, start_pgbouncer, write_pgbouncer

    server = make_url(url)
    host = server.query.get("host") or server.host or "127.0.0.1"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="bilheteria-pgbouncer-"))
    try:
        ini = write_pgbouncer(folder, port, str(host), server.port or 5432, server.database)
        process = start_pgbouncer(ini, folder / "pgbouncer.log")
    except ClusterError as exc:
        raise pytest.UsageError(f"TEST_THROUGH_PGBOUNCER=1: {exc}") from exc
    atexit.register(process.terminate)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log = (folder / "pgbouncer.log").read_text()
                raise pytest.UsageError(f"PgBouncer did not start:\n{log}") from None
            time.sleep(0.05)
    os.environ["DB_PGBOUNCER"] = "true"
    return server.set(host="127.0.0.1", port=port, query={}).render_as_string(hide_password=False)


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


def count(model: Any, *where: Any) -> int:
    """How many rows of ``model`` (matching ``where``) the test's session sees."""
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def explain(query: Any) -> str:
    """PostgreSQL's plan for a SQLAlchemy query as the test's session would run it, its
    parameters bound as they are when it runs."""
    compiled = query.compile(dialect=db.session.get_bind().dialect)
    rows = db.session.connection().exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
    return "\n".join(row[0] for row in rows)


def statements_during(call: Callable[[], T]) -> tuple[T, list[str]]:
    """What ``call`` returns, and the SQL statements the app's engine sent meanwhile (on any
    of its connections, autocommit ones included)."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        answer = call()
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    return answer, seen
