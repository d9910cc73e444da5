"""A request's leftover read-only transaction is committed (psycopg keeps its prepared statements,
which a ROLLBACK throws away); anything that wrote, or a failed request, is still rolled back."""

from __future__ import annotations

from sqlalchemy import func, insert, select, text

from app.extensions import db, end_read_only_transaction
from app.models import Partner


def _partners() -> int:
    return db.session.scalar(select(func.count()).select_from(Partner))


def test_a_transaction_that_only_read_is_committed(db_context):
    db.session.execute(select(Partner.id)).all()
    assert db.session().in_transaction()
    end_read_only_transaction(None)
    assert not db.session().in_transaction()


def test_a_transaction_that_wrote_without_the_orm_is_not_committed(db_context):
    db.session.execute(insert(Partner).values(name="Left behind", status="approved"))
    end_read_only_transaction(None)
    assert db.session().in_transaction()
    db.session.rollback()
    assert _partners() == 0


def test_a_raw_write_is_not_committed(db_context):
    db.session.execute(
        text("INSERT INTO partner (name, status, fee_percent, fee_fixed_cents, created_at) "
             "VALUES ('Raw', 'approved', 0, 0, CURRENT_TIMESTAMP)")
    )  # fmt: skip
    end_read_only_transaction(None)
    assert db.session().in_transaction()
    db.session.rollback()
    assert _partners() == 0


def test_a_flushed_orm_change_is_not_committed(db_context):
    db.session.add(Partner(name="Flushed", status="approved"))
    db.session.flush()
    end_read_only_transaction(None)
    db.session.rollback()
    assert _partners() == 0


def test_a_failed_request_is_not_committed(db_context):
    db.session.execute(select(Partner.id)).all()
    end_read_only_transaction(RuntimeError("boom"))
    assert db.session().in_transaction()


def test_after_a_commit_a_new_read_only_transaction_is_committed_again(db_context):
    db.session.add(Partner(name="Committed", status="approved"))
    db.session.commit()
    assert _partners() == 1
    end_read_only_transaction(None)
    assert not db.session().in_transaction()
