"""Cancelling an event refunds every paid order in a background task that works in batches,
can be interrupted and resumed, and never refunds twice."""

from __future__ import annotations

import pytest
from celery.exceptions import Retry
from sqlalchemy import select, text

from app.extensions import db
from app.models import Order, OrderStatus
from app.services import payments, refunds
from app.tasks import celery
from tests.support.builders import login, make_user
from tests.support.shop import buy


@pytest.fixture
def three_paid_orders(client, on_sale):
    for _ in range(3):
        buy(client, on_sale, 1)
    make_user("alice", "Partner", on_sale.partner)
    return on_sale


def _refunded_total() -> int:
    return db.session.scalar(
        text("SELECT COALESCE(SUM(refunded_cents), 0) FROM sim_acquirer_charge")
    )


def _statuses() -> list[str]:
    return [o.status for o in db.session.scalars(select(Order).order_by(Order.id))]


def test_cancelling_an_event_refunds_every_paid_order_once(client, three_paid_orders):
    login(client, "alice")
    client.post(f"/eventview/cancel/{three_paid_orders.id}", data={"reason": "Storm"})
    celery.tasks["refunds.cancelled_event"].apply(args=[three_paid_orders.id])  # as a worker
    assert _statuses() == [OrderStatus.REFUNDED] * 3
    assert _refunded_total() == 3 * 10000
    again = celery.tasks["refunds.cancelled_event"].apply(args=[three_paid_orders.id]).get()
    assert again == 0 and _refunded_total() == 3 * 10000


def test_an_interrupted_refund_run_resumes_without_refunding_twice(
    client, three_paid_orders, monkeypatch
):
    three_paid_orders.cancel("Storm")
    db.session.commit()
    real_refund = payments.SimulatedGateway.refund
    calls = []

    def processor_down_after_the_first(self, reference, amount, key=None):
        calls.append(reference)
        if len(calls) == 2:
            raise ConnectionError("the worker lost the processor mid-batch")
        return real_refund(self, reference, amount, key)

    monkeypatch.setattr(payments.SimulatedGateway, "refund", processor_down_after_the_first)
    # The run goes on past the failure, then asks to be run again for what it left.
    task = celery.tasks["refunds.cancelled_event"]
    assert refunds.RefundsUnfinished in task.autoretry_for and task.max_retries >= 10
    with pytest.raises(Retry) as retry:
        task.apply(args=[three_paid_orders.id]).get()
    assert len(retry.value.exc.order_ids) == 1
    assert _statuses() == [OrderStatus.REFUNDED, OrderStatus.PAID, OrderStatus.REFUNDED]
    monkeypatch.undo()
    done = celery.tasks["refunds.cancelled_event"].apply(args=[three_paid_orders.id]).get()
    assert done == 1
    assert _statuses() == [OrderStatus.REFUNDED] * 3
    assert _refunded_total() == 3 * 10000


def test_a_disputed_charge_does_not_stop_the_other_refunds(client, three_paid_orders):
    from app import sim_acquirer
    from app.models import Payment

    first = db.session.scalars(select(Payment).order_by(Payment.id)).first()
    assert sim_acquirer.chargeback(first.gateway_ref, "fraudulent") is not None
    three_paid_orders.cancel("Storm")
    db.session.commit()
    done = celery.tasks["refunds.cancelled_event"].apply(args=[three_paid_orders.id]).get()
    assert done == 2  # the disputed one is left for the chargeback's reconciliation
    assert _statuses() == [OrderStatus.PAID, OrderStatus.REFUNDED, OrderStatus.REFUNDED]


def test_a_charged_back_order_cannot_be_refunded(client, three_paid_orders):
    from app.models import Conflict, Payment
    from app.models.base import utcnow
    from app.services import refunds
    from app.services.scoping import SYSTEM

    payment = db.session.scalars(select(Payment).order_by(Payment.id)).first()
    refunds.record_chargeback(db.session, payment.id, "fraudulent", utcnow())
    db.session.commit()
    with pytest.raises(Conflict, match="charged back"):
        refunds.refund_order(db.session, payments.gateway(), payment.order_id, SYSTEM)
