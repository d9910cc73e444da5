"""Spots back on sale: a customer releases a hold or takes one spot out of their cart, a beat
task ends holds whose time ran out (ARCHITECTURE.md, "The purchase path"). A hold's spots are
free the moment it expires (EventSpot.free_clause) whether or not the sweep has run; the sweep
ends the hold and voids its unpaid order.
"""

from __future__ import annotations

import datetime as dt

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import metrics
from app.models import Conflict, Hold, HoldStatus, NotFound, Order, PaymentStatus
from app.models.base import Transition, utcnow
from app.services.after_commit import after_commit
from app.services.locking import busy_on_lock_failure
from app.services.purchase import cart
from app.services.purchase.summary import spots_of_hold


def _customer_hold_locked(session: Session, customer_id: int, hold_id: int) -> Hold:
    """The customer's hold, locked as checkout locks it; NotFound for another's, Conflict once
    paid."""
    hold = session.scalars(
        select(Hold).where(Hold.id == hold_id, Hold.customer_id == customer_id).with_for_update()
    ).first()
    if hold is None:
        raise NotFound(gettext("Hold not found."))
    if hold.status == HoldStatus.CONVERTED:
        raise Conflict(gettext("This hold was paid for: its tickets are in your orders."))
    return hold


def release_hold(session: Session, customer_id: int, hold_id: int) -> Hold:
    """The customer gives the spots back."""
    with busy_on_lock_failure(session):
        hold = _customer_hold_locked(session, customer_id, hold_id)
        _free(session, hold, Hold.RELEASE)
        session.commit()
    return hold


def release_spot(session: Session, customer_id: int, hold_id: int, spot_id: int) -> Hold:
    """The customer takes one spot out of their cart (the hold's last: the hold is released).
    A declined checkout's order of the cart is void (the next checkout prices what is left);
    a payment under way refuses (CartBeingPaid)."""
    with busy_on_lock_failure(session):
        hold = _customer_hold_locked(session, customer_id, hold_id)
        spots = spots_of_hold(session, hold.id, lock=True)
        spot = next((s for s in spots if s.id == spot_id), None)
        if spot is None or not hold.is_live(utcnow()):
            raise NotFound(gettext("This spot is not in your cart."), field="spot_id")
        cart.void_priced_order(
            session, session.scalar(select(Order).where(Order.hold_id == hold.id))
        )
        if len(spots) == 1:
            give_back(session, hold, Hold.RELEASE)
        else:
            spot.release()
            after_commit(session, lambda: metrics.HOLDS.labels("released").inc())
        session.commit()
    return hold


def release_expired_holds(
    session: Session, now: dt.datetime | None = None, batch: int = 500
) -> int:
    """Give the spots of expired holds back to sale; returns how many holds were expired."""
    now = now or utcnow()
    holds = session.scalars(
        select(Hold)
        .where(Hold.status == HoldStatus.ACTIVE, Hold.expires_at <= now)
        .order_by(Hold.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    for hold in holds:
        _free(session, hold, Hold.EXPIRE)
    session.commit()
    return len(holds)


def give_back(session: Session, hold: Hold, end: Transition) -> None:
    """The hold's spots back on sale (locked in id order), and the hold ended by ``end`` (one
    of Hold's transitions) if it is still active."""
    spots = spots_of_hold(session, hold.id, lock=True)
    for spot in spots:
        spot.release()
    if end.allows(hold.status):
        end.apply(hold, f"Hold {hold.id}")
        if end in (Hold.RELEASE, Hold.EXPIRE):
            outcome = "released" if end is Hold.RELEASE else "expired"
            after_commit(session, lambda: metrics.HOLDS.labels(outcome).inc(len(spots)))


def _free(session: Session, hold: Hold, end: Transition) -> None:
    """Give the hold's spots back; its unpaid order (priced at a checkout attempt) is void."""
    give_back(session, hold, end)
    order = session.scalar(select(Order).where(Order.hold_id == hold.id))
    if (
        order is not None
        and Order.CANCEL.allows(order.status)
        and not any(p.status == PaymentStatus.PENDING for p in order.payments)
    ):
        order.cancel(f"hold_{end.target}")
