"""A transaction that only read ends with COMMIT instead of ROLLBACK, so psycopg keeps the
connection's prepared statements (it throws them all away on ROLLBACK); a transaction that wrote,
or one that failed, is still rolled back."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.exc import ProgrammingError

from app.extensions import db
from app.models import Partner

# psycopg prepares a statement on the server once it has run this many times.
PREPARE_THRESHOLD = 5


def _partners() -> int:
    return db.session.scalar(select(func.count()).select_from(Partner))


def _prepared_on_server(conn: Connection) -> int:
    """Prepared statements of this connection's server session."""
    return conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()


def _run_until_prepared(conn: Connection) -> None:
    for _ in range(PREPARE_THRESHOLD + 1):
        conn.execute(select(Partner.id).where(Partner.name == "x")).all()
    assert _prepared_on_server(conn) > 0


def test_rolling_back_what_only_read_keeps_the_prepared_statements(db_context):
    with db.engine.connect() as conn:
        _run_until_prepared(conn)
        conn.execute(select(Partner.id).with_for_update()).all()  # a lock is only a read
        conn.rollback()
        assert _prepared_on_server(conn) > 0


def test_a_write_is_still_rolled_back(db_context):
    db.session.execute(insert(Partner).values(name="Left behind", status="approved"))
    db.session.rollback()
    assert _partners() == 0


def test_a_raw_write_is_still_rolled_back(db_context):
    db.session.execute(
        text("INSERT INTO partner (name, status, fee_percent, fee_fixed_cents, created_at) "
             "VALUES ('Raw', 'approved', 0, 0, CURRENT_TIMESTAMP)")
    )  # fmt: skip
    db.session.rollback()
    assert _partners() == 0


def test_a_flushed_orm_change_is_still_rolled_back(db_context):
    db.session.add(Partner(name="Flushed", status="approved"))
    db.session.flush()
    db.session.rollback()
    assert _partners() == 0


def test_a_failed_transaction_is_rolled_back_and_the_session_goes_on(db_context):
    with pytest.raises(ProgrammingError):
        db.session.execute(text("SELECT no_such_column FROM partner")).all()
    db.session.rollback()
    assert _partners() == 0


def test_after_a_write_commits_the_next_read_only_transaction_keeps_its_statements(db_context):
    with db.engine.connect() as conn:
        conn.execute(insert(Partner).values(name="Committed", status="approved"))
        conn.commit()
        _run_until_prepared(conn)
        conn.rollback()
        assert _prepared_on_server(conn) > 0
    assert _partners() == 1
