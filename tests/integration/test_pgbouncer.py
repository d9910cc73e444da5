"""`make test-pgbouncer` runs the concurrency tests through a real PgBouncer in transaction mode
(TEST_THROUGH_PGBOUNCER=1, tests/support/database.py): this checks that the run does go through it
and that the lock timeout still holds there, where the app cannot send it at connect."""

from __future__ import annotations

import os

import psycopg
import pytest
from flask import Flask
from psycopg.rows import dict_row
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.extensions import db

THROUGH_PGBOUNCER = os.environ.get("TEST_THROUGH_PGBOUNCER") == "1"


@pytest.mark.concurrency
def test_every_connection_has_the_lock_timeout(app: Flask) -> None:
    assert db.session.scalar(text("SHOW lock_timeout")) == "2s"


@pytest.mark.concurrency
@pytest.mark.skipif(not THROUGH_PGBOUNCER, reason="only with TEST_THROUGH_PGBOUNCER=1")
def test_the_run_goes_through_pgbouncer_in_transaction_mode(app: Flask) -> None:
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    # The app talks to PgBouncer's port; PostgreSQL answers from its own.
    assert db.session.scalar(text("SELECT inet_server_port()")) != url.port
    # PgBouncer's console answers the simple query protocol only (a ClientCursor's).
    with psycopg.connect(
        host=url.host, port=url.port, user="postgres", dbname="pgbouncer", autocommit=True,
        cursor_factory=psycopg.ClientCursor, row_factory=dict_row,
    ) as console:  # fmt: skip
        pools = console.execute("SHOW POOLS").fetchall()
    assert (url.database, "transaction") in {
        (pool["database"], pool["pool_mode"]) for pool in pools
    }
