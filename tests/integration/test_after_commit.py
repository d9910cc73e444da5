"""Work promised for after a commit (tasks, Redis, caches) happens only once the rows are
committed, never after a rollback, and may use the session itself (an in-process task does)."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import Partner
from app.services.after_commit import after_commit
from tests.support.builders import make_partner


def test_a_callback_runs_once_the_transaction_commits_and_sees_its_rows():
    seen: list[int] = []
    partner = make_partner("Aurora")
    partner.name = "Aurora Producoes"
    after_commit(db.session, lambda: seen.append(db.session.scalar(select(func.count(Partner.id)))))
    db.session.flush()
    assert seen == []
    db.session.commit()
    assert seen == [1]
    db.session.commit()  # a later transaction does not run it again
    assert seen == [1]


def test_a_rolled_back_transaction_runs_nothing():
    seen: list[str] = []
    make_partner("Aurora")
    db.session.add(Partner(name="Never", status="approved", fee_percent=0, fee_fixed_cents=0))
    after_commit(db.session, lambda: seen.append("sent"))
    db.session.rollback()
    db.session.commit()
    assert seen == []


def test_a_failing_callback_is_logged_and_the_others_still_run(caplog):
    seen: list[str] = []
    make_partner("Aurora")
    after_commit(db.session, lambda: 1 / 0)
    after_commit(db.session, lambda: seen.append("second"))
    db.session.commit()
    assert seen == ["second"]
    assert "after-commit callback" in caplog.text
