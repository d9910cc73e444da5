"""Work promised for after a commit (tasks, Redis, caches) happens only once the rows are
committed, never after a rollback, and may use the session itself (an in-process task does)."""

from __future__ import annotations

import socket
import time

from sqlalchemy import func, select

from app.extensions import celery, db
from app.models import Partner
from app.services import after_commit as after_commit_module
from app.services.after_commit import after_commit, enqueue
from tests.support.apps import another_app
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


def test_with_the_broker_down_one_send_finds_out_and_the_next_ones_wait_for_the_sweep(
    app, monkeypatch, caplog, request
):
    """Redis down (connection refused): the first task pays kombu's retries and fails; for
    BROKER_PAUSE_SECONDS no later commit tries again (each would add the same wait to its
    request), and afterwards sending is tried again. Every such task has a sweep."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    monkeypatch.setattr(after_commit_module, "_broker_paused_until", 0.0)
    # The Celery app keeps the connection and producer pools of the broker it first sent to
    # (an earlier test's real Redis): dropped here and after, so each app sends to its own.
    forget_broker_connections()
    request.addfinalizer(forget_broker_connections)
    with (
        another_app(app, CELERY_BROKER_URL=closed, CELERY_TASK_ALWAYS_EAGER=False) as down,
        down.app_context(),
    ):
        took = []
        for _ in range(3):
            started = time.perf_counter()
            enqueue(db.session, "mail.send_due")
            db.session.commit()
            took.append(time.perf_counter() - started)
        assert took[0] > 0.2, took  # kombu tried and gave up
        assert max(took[1:]) < 0.05, took  # not tried: the sweep sends it
        assert caplog.text.count("broker down: task mail.send_due left to its sweep") == 3
        monkeypatch.setattr(after_commit_module, "_broker_paused_until", time.monotonic())
        started = time.perf_counter()
        enqueue(db.session, "mail.send_due")
        db.session.commit()
        assert time.perf_counter() - started > 0.2  # tried again once the pause is over
        db.session.remove()


def forget_broker_connections() -> None:
    celery.close()
    celery.amqp._producer_pool = None
