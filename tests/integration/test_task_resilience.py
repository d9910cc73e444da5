"""One failure in a periodic or background task does not stop the rest of its work, and work a
transient failure left undone is done again (found by a review of the tasks)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import Order, Payment, SettlementDay
from app.models.base import utcnow
from app.services import payments, refunds
from app.tasks import celery
from tests.support.shop import buy

pytestmark = pytest.mark.usefixtures("db_context")


def test_one_pending_refund_that_fails_does_not_hold_back_the_others(client, on_sale, monkeypatch):
    from app.models import PaymentRefund, RefundStatus

    for _ in range(3):
        buy(client, on_sale, 1)
    real_refund = payments.SimulatedGateway.refund
    monkeypatch.setattr(  # the answers are lost: every refund stays pending
        payments.SimulatedGateway,
        "refund",
        lambda *args, **kwargs: (_ for _ in ()).throw(TimeoutError("no answer")),
    )
    for order_id in [o.id for o in db.session.scalars(select(Order).order_by(Order.id))]:
        with pytest.raises(Exception):  # noqa: B017 - the customer's request fails, the refund waits
            refunds.refund_order(db.session, payments.gateway(), order_id, refunds.SYSTEM)
        db.session.rollback()
    poisoned = []

    def only_the_first_fails(self, reference, amount, key=None):
        if not poisoned:
            poisoned.append(reference)
            raise ConnectionError("still down for this one")
        return real_refund(self, reference, amount, key)

    monkeypatch.setattr(payments.SimulatedGateway, "refund", only_the_first_fails)
    later = utcnow() + dt.timedelta(minutes=10)
    refunds.finish_pending_refunds(db.session, payments.gateway(), later)
    db.session.expire_all()
    # The one asked first (in whatever order the task took them) failed; the others went on.
    states = dict(
        db.session.execute(
            select(Payment.gateway_ref, PaymentRefund.status).join(
                Payment, Payment.id == PaymentRefund.payment_id
            )
        ).all()
    )
    assert len(states) == 3 and len(poisoned) == 1
    assert states.pop(poisoned[0]) == RefundStatus.PENDING
    assert set(states.values()) == {RefundStatus.DONE}


def test_one_days_report_failing_does_not_stop_the_later_days(client, on_sale, monkeypatch):
    buy(client, on_sale, 1)
    today = utcnow().date()
    db.session.execute(
        update(Payment).values(
            captured_at=dt.datetime.combine(today - dt.timedelta(days=3), dt.time(12))
        )
    )
    db.session.commit()
    bad_day = today - dt.timedelta(days=4)
    real_report = payments.SimulatedGateway.settlement_report

    def report(self, day):
        if day == bad_day:
            raise RuntimeError("acquirer: this day's report is unavailable")
        return real_report(self, day)

    monkeypatch.setattr(payments.SimulatedGateway, "settlement_report", report)
    celery.tasks["money.reconcile_settlements"].apply().get()
    done = set(db.session.scalars(select(SettlementDay.day)))
    assert {today - dt.timedelta(days=n) for n in (1, 2, 3)} <= done
    assert bad_day not in done


def test_a_second_delivery_failing_leaves_a_written_report_done():
    from app.models import Report, ReportStatus

    report = Report(kind="sales_by_event", format="csv", status=ReportStatus.DONE.value)
    report.fail("the second run lost the race for the file", utcnow())
    assert report.status == ReportStatus.DONE and report.error is None


def test_workers_log_as_the_app_does_and_the_database_connection_times_out():
    from app.config import load_config

    assert celery.conf.worker_hijack_root_logger is False  # JSON lines with their fields
    options = load_config({"DATABASE_URL": "postgresql://db.example/x"})[
        "SQLALCHEMY_ENGINE_OPTIONS"
    ]
    assert options["connect_args"]["connect_timeout"] == 5  # a silent server fails, not hangs
