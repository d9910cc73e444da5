"""The demo runs Celery beat's schedule in its own process (`flask demo serve`): every periodic
task runs once at start, in the schedule's order, then on its schedule; a failing task does not
stop the others; the thread stops when the server returns."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Hold, HoldStatus, Payout, SettlementDay
from app.tasks import celery
from app.tasks.in_process_beat import THREAD_NAME, InProcessBeat
from tests.support.money import happened_days_ago
from tests.support.shop import buy, expire, sign_up

pytestmark = pytest.mark.usefixtures("acquirer_fees")


def _eventually(check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not done in time"
        time.sleep(0.05)


def _count(model: type, *where: object) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _beat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME and t.is_alive()]


def test_the_demo_beat_runs_the_one_celery_schedule():
    beat = InProcessBeat(celery)
    assert [e.name for e in beat.entries] == list(celery.conf.beat_schedule)
    assert [e.task for e in beat.entries] == [
        entry["task"] for entry in celery.conf.beat_schedule.values()
    ]
    assert {e.task for e in beat.entries} <= set(celery.tasks)


def test_at_start_every_task_runs_once_so_holds_expire_and_past_days_are_settled_and_paid_out(
    client, on_sale
):
    buy(client, on_sale)
    sold_on = happened_days_ago()
    held = client.post(
        "/api/v1/holds/",
        json={"event_id": on_sale.id, "section_id": on_sale.sections[0].id, "quantity": 1},
        headers=sign_up(client, "late@example.com"),
    )
    expired = held.get_json()["result"]["id"]
    expire(expired)
    db.session.commit()

    beat = InProcessBeat(celery)
    beat.start()
    try:
        _eventually(lambda: beat.runs["create-payouts"] == 1)
    finally:
        beat.stop()
    assert not beat.running and _beat_threads() == []
    assert set(beat.runs) == set(celery.conf.beat_schedule) and beat.failures == {}
    assert db.session.get(Hold, expired).status == HoldStatus.EXPIRED
    assert _count(SettlementDay, SettlementDay.day == sold_on) == 1
    # The payout run came after the settlement (schedule order): the sale is paid out.
    assert _count(Payout) == 1


def test_a_task_that_fails_is_logged_and_the_others_still_run_on_their_schedule(
    client, on_sale, caplog
):
    beat = InProcessBeat(
        celery,
        {
            # A day that is not a date: the task raises.
            "broken": {
                "task": "money.reconcile_settlements",
                "schedule": 0.1,
                "kwargs": {"day": "not-a-day"},
            },
            "release-expired-holds": {"task": "holds.release_expired", "schedule": 0.1},
        },
    )
    beat.start()
    try:
        _eventually(lambda: beat.runs["release-expired-holds"] >= 3)
    finally:
        beat.stop()
    assert beat.failures["broken"] >= 3 and beat.failures["release-expired-holds"] == 0
    assert "scheduled task broken failed: it runs again at its next turn" in caplog.text


def test_demo_serve_runs_the_beat_while_it_serves_and_stops_it_when_the_server_returns(
    app, two_partners, monkeypatch
):
    seen = []

    def serve(host: str, port: int, application: object, **_: object) -> None:
        """Stands in for the server: notes the beat threads running and returns at once, as
        the server does after Ctrl-C."""
        seen.append(len(_beat_threads()))

    monkeypatch.setattr("werkzeug.serving.run_simple", serve)
    result = app.test_cli_runner().invoke(args=["demo", "serve", "--port", "5999"])
    assert result.exit_code == 0, result.output
    assert "Periodic tasks: running in this process" in result.output
    assert _beat_threads() == []

    quiet = app.test_cli_runner().invoke(args=["demo", "serve", "--no-beat"])
    assert quiet.exit_code == 0 and "Periodic tasks" not in quiet.output
    assert seen == [1, 0]
