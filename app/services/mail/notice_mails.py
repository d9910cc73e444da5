"""Mails that tell customers their order changed: a refund (by the organiser or the platform),
their own cancellation, an event cancelled (with the refund that follows) or moved.

Each is written in the transaction of its cause (``refunds._complete``,
``events.cancel_event``, the event-change listener below) and rendered when sent, in the
customer's language. Amounts are what the customer paid or gets back; never a fee, never card
data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import url_for
from flask_babel import gettext
from sqlalchemy import Select, String, cast, event, func, inspect, literal, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from app.models import (
    Customer,
    Event,
    EventStatus,
    Order,
    OrderStatus,
    PartnerUser,
    Payment,
    PaymentRefund,
    PaymentStatus,
)
from app.models.base import utcnow
from app.services.mail import outbox
from app.services.mail.messages import Gone, Message, render_pair, renderer

# What a customer is told of when it changes on an event they hold tickets for.
WATCHED = ("starts_at", "venue", "address", "city", "timezone")


def _order(session: Session, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise Gone(f"order {order_id} no longer exists")
    return order


def _order_url(order: Order) -> str:
    return url_for("shop.order", order_id=order.id, _external=True)


# -- refunds and cancellations -------------------------------------------------------------------


def queue_refund(session: Session, refund: PaymentRefund, by: str) -> None:
    """The refund just booked, to its customer: a cancellation notice when the customer asked
    for it, else a refund notice."""
    kind = "order_cancelled" if by == "customer" else "refund"
    order = refund.payment.order
    outbox.queue_to_customer(
        session,
        kind,
        order.customer_id,
        key=f"refund:{refund.id}",
        params={"refund_id": refund.id, "by": by},
    )


@renderer("refund")
@renderer("order_cancelled")
def refund_mail(session: Session, params: dict[str, Any]) -> Message:
    """A refund's notice; the customer's own cancellation is one too, said as theirs."""
    refund = session.get(PaymentRefund, params["refund_id"])
    if refund is None:
        raise Gone(f"refund {params['refund_id']} no longer exists")
    order = refund.payment.order
    by_customer = params.get("by") == "customer"
    subject = (
        gettext("Your order %(id)s is cancelled: %(event)s", id=order.id, event=order.event.name)
        if by_customer
        else gettext("Refund for your order %(id)s: %(event)s", id=order.id, event=order.event.name)
    )
    return render_pair(
        "refund",
        subject,
        order=order,
        event=order.event,
        customer=order.customer,
        refund=refund,
        tickets=refund.tickets,
        whole=order.status == OrderStatus.REFUNDED,
        by_customer=by_customer,
        event_cancelled=params.get("by") == "event_cancelled",
        order_url=_order_url(order),
    )


# -- an event cancelled or moved -----------------------------------------------------------------


def _to_paid_orders(event_id: int, key: Any, params: Any) -> Select[Any]:
    """One row per paid order of the event: the columns outbox.queue_many writes. A notice
    carries no tickets: it is not held for an unconfirmed address."""
    return (
        select(
            key.label("key"),
            Customer.email.label("to_address"),
            outbox.locale_column(PartnerUser.locale).label("locale"),
            params.label("params"),
            literal(False).label("held"),
        )
        .select_from(Order)
        .join(Customer, Customer.id == Order.customer_id)
        .outerjoin(PartnerUser, PartnerUser.id == Customer.user_id)
        .where(Order.event_id == event_id, Order.status == OrderStatus.PAID)
    )


def queue_event_cancelled(session: Session, event_id: int) -> int:
    """Every customer with a paid order hears that the event is cancelled and that their money
    comes back, in one statement however many orders (the refunds follow, each with its own
    notice)."""
    key = literal(f"event_cancelled:{event_id}:") + cast(Order.id, String)
    # What comes back, as of the cancellation: the mail may be sent after the refund ran.
    to_refund = (
        select(func.coalesce(func.sum(Payment.amount_cents - Payment.refunded_cents), 0))
        .where(Payment.order_id == Order.id, Payment.status == PaymentStatus.CAPTURED)
        .scalar_subquery()
    )
    params = func.jsonb_build_object(
        "order_id", Order.id, "event_id", event_id, "refund_cents", to_refund
    )
    return outbox.queue_many(session, "event_cancelled", _to_paid_orders(event_id, key, params))


@renderer("event_cancelled")
def event_cancelled_mail(session: Session, params: dict[str, Any]) -> Message:
    order = _order(session, params["order_id"])
    event_ = order.event
    subject = gettext("Cancelled: %(event)s", event=event_.name)
    return render_pair(
        "event_cancelled",
        subject,
        order=order,
        event=event_,
        customer=order.customer,
        refund_cents=int(params.get("refund_cents") or 0),
        order_url=_order_url(order),
    )


def _before(values: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value.isoformat() if isinstance(value, dt.datetime) else value
        for name, value in values.items()
    }


def queue_event_changed(session: Session, event_: Event, before: dict[str, Any]) -> int:
    """Customers with paid orders hear that the event's time or place changed: ``before`` and
    the new values travel in the mail (a second change before the first mail left is its own
    mail, each telling its own change). One mail per order and change."""
    after = {name: getattr(event_, name) for name in WATCHED}
    change = f"{utcnow():%Y%m%d%H%M%S%f}"  # this change: a later one back and forth is another
    key = literal(f"event_changed:{event_.id}:{change}:") + cast(Order.id, String)
    params = func.jsonb_build_object(
        "order_id",
        Order.id,
        "event_id",
        event_.id,
        "before",
        cast(_before(before), JSONB),
        "after",
        cast(_before(after), JSONB),
    )
    return outbox.queue_many(session, "event_changed", _to_paid_orders(event_.id, key, params))


def _place(values: dict[str, Any]) -> str:
    return ", ".join(str(values[name]) for name in ("venue", "address", "city") if values.get(name))


def _start(values: dict[str, Any]) -> dt.datetime | None:
    return dt.datetime.fromisoformat(values["starts_at"]) if values.get("starts_at") else None


@renderer("event_changed")
def event_changed_mail(session: Session, params: dict[str, Any]) -> Message:
    order = _order(session, params["order_id"])
    event_ = order.event
    before, after = params.get("before") or {}, params.get("after") or {}
    zone_before = before.get("timezone") or event_.timezone
    zone_after = after.get("timezone") or event_.timezone
    old_start, new_start = _start(before), _start(after) or event_.starts_at
    moved = old_start is not None and (old_start, zone_before) != (new_start, zone_after)
    old_place, new_place = (
        _place(before),
        _place(after)
        or _place({name: getattr(event_, name) for name in ("venue", "address", "city")}),
    )
    subject = gettext("Changed: %(event)s", event=event_.name)
    return render_pair(
        "event_changed",
        subject,
        order=order,
        event=event_,
        customer=order.customer,
        moved=moved,
        old_start=old_start,
        old_zone=zone_before,
        new_start=new_start,
        new_zone=zone_after,
        relocated=bool(old_place) and old_place != new_place,
        old_place=old_place,
        new_place=new_place,
        order_url=_order_url(order),
    )


@event.listens_for(Session, "after_flush")
def _event_changes(session: Session, _context: Any) -> None:
    """An event's time or place changed by any path (the dashboard, the API): its customers are
    told in the change's transaction. Not for cancelled or past events."""
    for row in session.dirty:
        if not isinstance(row, Event) or row.status == EventStatus.CANCELLED:
            continue
        state = inspect(row)
        before: dict[str, Any] = {}
        changed = False
        for name in WATCHED:
            history = state.attrs[name].history
            if history.has_changes() and history.deleted:
                old = history.deleted[0]
                if old != getattr(row, name):
                    changed = True
                before[name] = old
            else:
                before[name] = getattr(row, name)
        if changed and row.published_at is not None:
            queue_event_changed(session, row, before)
