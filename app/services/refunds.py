"""Refunds of paid orders, by the partner or the platform (DESIGN.md, "Money")."""

from __future__ import annotations

import datetime as dt
import logging

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    Conflict,
    EventStatus,
    NotFound,
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    TicketStatus,
)
from app.models.base import utcnow
from app.services import checkin, ledger
from app.services.locking import busy_on_lock_failure
from app.services.payments import PaymentGateway
from app.services.scoping import SYSTEM, Actor, owned_query

log = logging.getLogger(__name__)


class RefundFailed(Conflict):
    code = "refund_failed"
    status = 502


def refund_order(session: Session, gateway: PaymentGateway, order_id: int, actor: Actor) -> Order:
    """Refund a paid order in full: the card is refunded first (asking twice refunds once), then
    in one transaction the tickets are revoked, their spots return to sale (unless the event is
    cancelled) and the ledger records the refund."""
    order = _locked_order(session, order_id, actor)
    if order.status == OrderStatus.REFUNDED:
        session.rollback()
        return order
    if order.status != OrderStatus.PAID:
        raise Conflict(f"Order {order.id} is {order.status}: only a paid order is refunded.")
    payment = _captured(order)
    reference, amount = payment.gateway_ref or "", payment.amount_cents
    session.rollback()  # no lock is held while the processor is called
    if not gateway.refund(reference, amount):
        raise RefundFailed(f"The payment processor refused to refund order {order_id}.")
    with busy_on_lock_failure(session):
        order = _locked_order(session, order_id, actor)
        if order.status == OrderStatus.REFUNDED:  # someone else finished it meanwhile
            session.rollback()
            return order
        now = utcnow()
        payment = _captured(order)
        order.refund(now, event_cancelled=order.event.status == EventStatus.CANCELLED)
        payment.mark_refunded(now)
        ledger.post_refund(
            session, payment, return_platform_fee=current_app.config["REFUND_RETURNS_PLATFORM_FEE"]
        )
        session.commit()
    revoked = [t.id for t in order.tickets if t.status == TicketStatus.REVOKED]
    checkin.note_revoked(order.event_id, revoked)  # an armed event's gates learn it at once
    log.info("order refunded", extra={"order_id": order_id, "amount": amount})
    return order


class RefundWindowClosed(Conflict):
    code = "refund_window_closed"


def cancel_by_customer(
    session: Session,
    gateway: PaymentGateway,
    customer_id: int,
    order_id: int,
    now: dt.datetime | None = None,
) -> Order:
    """A customer cancels their own paid order for a full refund, while the event's refund
    window is open. Another customer's order does not exist for them (NotFound)."""
    now = now or utcnow()
    order = session.get(Order, order_id)
    if order is None or order.customer_id != customer_id:
        raise NotFound("Order not found.")
    if order.status == OrderStatus.REFUNDED:
        return order
    if order.status != OrderStatus.PAID:
        raise Conflict(f"Order {order.id} is {order.status}: only a paid order is cancelled.")
    deadline = order.event.customer_cancel_deadline()
    if deadline is None:
        raise RefundWindowClosed(
            "This event does not take cancellations: contact the organiser.", deadline=None
        )
    if now > deadline:
        raise RefundWindowClosed(
            f"Cancellations closed on {deadline:%d %b %Y, %H:%M} UTC.",
            deadline=deadline.isoformat() + "Z",
        )
    session.rollback()
    return refund_order(session, gateway, order_id, SYSTEM)


def _locked_order(session: Session, order_id: int, actor: Actor) -> Order:
    session.expire_all()  # read what others committed, not what this session remembers
    order = session.scalars(
        owned_query(Order, actor).where(Order.id == order_id).with_for_update(of=Order)
    ).first()
    if order is None:
        raise NotFound("Order not found.")
    return order


def _captured(order: Order) -> Payment:
    captured = [p for p in order.payments if p.status == PaymentStatus.CAPTURED]
    if len(captured) != 1:
        raise Conflict(f"Order {order.id} has no single captured payment to refund.")
    return captured[0]


def record_chargeback(
    session: Session, payment_id: int, reason: str | None, now: dt.datetime
) -> Order:
    """The acquirer took a disputed payment back: as for a refund, the tickets are revoked, their
    spots return to sale (unless the event is cancelled) and the ledger reverses the sale, here
    as a chargeback. Runs in the caller's transaction (the reconciliation of the report that
    said so); Conflict when the payment is not the captured payment of a paid order."""
    session.flush()  # _locked_order expires what the session holds
    order_id = session.scalar(select(Payment.order_id).where(Payment.id == payment_id))
    order = _locked_order(session, order_id, SYSTEM)
    if order.status != OrderStatus.PAID:
        raise Conflict(f"Order {order.id} is {order.status}: only a paid order is charged back.")
    payment = _captured(order)
    if payment.id != payment_id:
        raise Conflict(f"Payment {payment_id} is not the captured payment of order {order.id}.")
    order.refund(now, event_cancelled=order.event.status == EventStatus.CANCELLED)
    payment.mark_charged_back(now)
    ledger.post_chargeback(session, payment, reason=reason)
    revoked = [t.id for t in order.tickets if t.status == TicketStatus.REVOKED]
    checkin.note_revoked_after_commit(session, order.event_id, revoked)
    log.info("order charged back", extra={"order_id": order.id, "payment_id": payment_id})
    return order


def refund_event_orders(
    session: Session, gateway: PaymentGateway, event_id: int, *, batch: int = 50
) -> int:
    """Refund every paid order of a (cancelled) event, a batch at a time. Each order is refunded
    in its own transaction and a refunded order is skipped, so an interrupted run resumes where
    it stopped and nothing is refunded twice. Returns how many orders this run refunded."""
    refunded = 0
    while True:
        order_ids = session.scalars(
            select(Order.id)
            .where(Order.event_id == event_id, Order.status == OrderStatus.PAID)
            .order_by(Order.id)
            .limit(batch)
        ).all()
        session.rollback()
        if not order_ids:
            return refunded
        for order_id in order_ids:
            refund_order(session, gateway, order_id, SYSTEM)
            refunded += 1
