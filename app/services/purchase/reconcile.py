"""Finish what the purchase path left unfinished (a periodic task, app/tasks/holds.py).

A crash or a processor timeout can leave a payment pending: after STALE_PAYMENT it is charged
again under its own idempotency key (the gateway answers with the first outcome, so the card is
charged at most once) and confirmed (confirm.py). A charge captured for an order that was
cancelled (its hold lost) whose refund failed is refunded again, and refunds left pending by
the refunds service are finished.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import DomainError, Order, OrderStatus, Payment, PaymentStatus
from app.models.base import literal_is
from app.services import refunds
from app.services.payments import PaymentGateway
from app.services.purchase import checkout, confirm

log = logging.getLogger(__name__)

# A pending payment this old is finished by the reconcile task.
STALE_PAYMENT = dt.timedelta(minutes=2)


def reconcile_payments(
    session: Session, gateway: PaymentGateway, now: dt.datetime
) -> dict[str, int]:
    """Finish what crashed or timed out: pending payments older than STALE_PAYMENT are charged
    (at most once, by their key) and confirmed; captured charges of cancelled orders are
    refunded. Returns how many of each were handled."""
    stale = session.scalars(
        select(Payment.id).where(
            literal_is(Payment.status, PaymentStatus.PENDING),  # ix_payment_pending
            Payment.created_at < now - STALE_PAYMENT,
        )
    ).all()
    finished = 0
    for payment_id in stale:
        try:
            checkout.complete_payment(session, gateway, payment_id)
        except DomainError:
            session.rollback()
        except Exception:  # one payment that cannot be finished must not stop the others
            session.rollback()
            log.exception("payment %s could not be finished", payment_id)
            continue
        finished += 1
    unrefunded = session.scalars(
        select(Payment.id)
        .join(Order, Order.id == Payment.order_id)
        .where(
            Payment.status == PaymentStatus.CAPTURED,
            Order.status == OrderStatus.CANCELLED,
            Order.cancel_reason.is_not(None),  # every cancelled one's: ix_order_cancelled
        )
    ).all()
    for payment_id in unrefunded:
        confirm.refund_lost(session, gateway, payment_id)
    pending = refunds.finish_pending_refunds(session, gateway, now)
    return {
        "finished": finished,
        "refunds_retried": len(unrefunded),
        "pending_refunds_finished": pending,
    }
