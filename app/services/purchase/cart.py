"""The cart: a customer's live hold for an event gathers what they choose, section after section
and ticket type after ticket type, into one order and one payment (ARCHITECTURE.md, "The
purchase path").

A hold request of a customer who holds spots for the event adds the new spots to that hold, which
is read and locked here after the customer's lock (hold.py); the added spots expire with it
(adding does not restart its time, and the per-customer limit counts the whole cart). A cart whose
checkout was tried and declined loses that unpaid order when it changes, so that the next
checkout prices all of it; a cart being paid right now cannot change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext
from sqlalchemy import Connection, bindparam, exists, select
from sqlalchemy.orm import Session

from app.models import (
    Conflict,
    Hold,
    HoldStatus,
    Order,
    Payment,
    PaymentStatus,
    WaitlistEntry,
)
from app.models.base import literal_is


class CartBeingPaid(Conflict):
    code = "checkout_in_progress"


_hold, _order, _payment = Hold.__table__, Order.__table__, Payment.__table__
_offer = WaitlistEntry.__table__
# The customer's cart for the event: their live hold (the newest, should there be two from before
# carts), locked as checkout locks it. A waiting list's offer is not a cart: its spots are the
# line's, for the offer's own time, and leaving the list releases it (app/services/waitlist.py).
# Read after the customer's lock, in a statement of its own, so that it sees a hold the
# customer's previous request committed while this one waited.
_CART = (
    select(_hold.c.id, _hold.c.expires_at)
    .where(
        _hold.c.customer_id == bindparam("customer_id"),
        _hold.c.event_id == bindparam("event_id"),
        literal_is(_hold.c.status, HoldStatus.ACTIVE.value),  # ix_hold_live_cart's predicate
        _hold.c.expires_at > bindparam("now"),
        ~exists().where(_offer.c.hold_id == _hold.c.id),
    )
    .order_by(_hold.c.id.desc())
    .limit(1)
    .with_for_update(of=_hold)
)
# The cart's order, if a checkout was tried, and whether a payment for it is under way: read in
# a statement after the hold's lock, as checkout's are (a statement that waited for a row lock
# sees only that row anew, not the order and payment checkout committed meanwhile).
_PRICED = select(
    select(_order.c.id).where(_order.c.hold_id == bindparam("cart_id")).scalar_subquery(),
    select(_payment.c.id)
    .join(_order, _order.c.id == _payment.c.order_id)
    .where(
        _order.c.hold_id == bindparam("cart_id"),
        _payment.c.status == PaymentStatus.PENDING.value,
    )
    .limit(1)
    .scalar_subquery(),
)


@dataclass(frozen=True)
class Cart:
    id: int
    expires_at: dt.datetime
    order_id: int | None  # a declined checkout's order, which no longer prices it once changed


def locked(conn: Connection, ids: dict[str, Any]) -> Cart | None:
    """The customer's cart for ``ids``' event (customer_id, event_id, now), locked; None when they
    hold nothing live there. CartBeingPaid while a payment for it is under way."""
    row = conn.execute(_CART, ids).first()
    if row is None:
        return None
    order_id, paying = conn.execute(_PRICED, {"cart_id": row.id}).one()
    if paying is not None:
        raise CartBeingPaid(
            gettext(
                "A payment for the seats you hold is being processed: wait for it before "
                "changing them."
            )
        )
    return Cart(row.id, row.expires_at, order_id)


def void_priced_order(session: Session, order: Order | None) -> None:
    """The cart changes: its order from a declined checkout (if any, with no payment under way)
    no longer prices it. The order is cancelled and lets go of the hold, so that the next
    checkout records a new one for the whole cart."""
    if order is None:
        return
    if any(p.status == PaymentStatus.PENDING for p in order.payments):
        raise CartBeingPaid(gettext("A payment for these seats is being processed: wait for it."))
    if Order.CANCEL.allows(order.status):
        order.cancel("cart_changed")
    order.hold_id = None
    session.flush()
