"""Holds: a customer's short claim on spots before paying (DESIGN.md, "Purchase path", step 1)."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Sequence
from itertools import groupby

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from app.models import (
    Busy,
    Conflict,
    Customer,
    DomainError,
    Event,
    EventSection,
    EventSpot,
    EventStatus,
    Hold,
    HoldStatus,
    NotFound,
    Order,
    OrderStatus,
    PaymentStatus,
    SpotStatus,
)
from app.models.base import utcnow
from app.services.locking import busy_on_lock_failure

# How many free rows best-available locks (SKIP LOCKED) to choose adjacent seats among: wide
# enough for adjacent seats, narrow enough to leave rows for concurrent buyers.
BEST_AVAILABLE_WINDOW = 12
# How often best-available looks again when every free spot is locked by other buyers.
BEST_AVAILABLE_ATTEMPTS = 20


class SpotsUnavailable(Conflict):
    code = "spots_unavailable"


class HoldLimitExceeded(DomainError):
    code = "hold_limit"


def hold_duration() -> dt.timedelta:
    return dt.timedelta(minutes=current_app.config["HOLD_MINUTES"])


def public_event(session: Session, event_id: int) -> Event:
    """A published or cancelled event (drafts do not exist for the public)."""
    event = session.get(Event, event_id, options=[joinedload(Event.partner)])
    if event is None or event.status == EventStatus.DRAFT:
        raise NotFound("Event not found.")
    return event


def held_by_customer(session: Session, customer_id: int, event_id: int, now: dt.datetime) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(EventSpot)
            .join(Hold, Hold.id == EventSpot.hold_id)
            .where(
                Hold.customer_id == customer_id,
                Hold.event_id == event_id,
                Hold.status == HoldStatus.ACTIVE,
                Hold.expires_at > now,
                EventSpot.status == SpotStatus.HELD,
            )
        )
        or 0
    )


def reserve_spots(
    session: Session,
    customer_id: int,
    event_id: int,
    *,
    spot_ids: Sequence[int] | None = None,
    section_id: int | None = None,
    quantity: int | None = None,
    now: dt.datetime | None = None,
) -> Hold:
    """Hold the chosen spots, or the best ``quantity`` in a section, for ``HOLD_MINUTES``.

    Locks rows in id order (``SKIP LOCKED`` for best-available); a taken spot raises
    SpotsUnavailable naming it; a lock not had in time raises Busy.
    """
    now = now or utcnow()
    event = public_event(session, event_id)
    event.require_on_sale(now)
    wanted = len(set(spot_ids)) if spot_ids else (quantity or 0)
    if wanted < 1:
        raise DomainError("Choose at least one spot.", field="spot_ids" if spot_ids else "quantity")
    limit = current_app.config["MAX_SPOTS_PER_EVENT"]
    # One customer's holds are counted one at a time: parallel requests cannot pass the limit.
    session.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update())
    already = held_by_customer(session, customer_id, event_id, now)
    if already + wanted > limit:
        raise HoldLimitExceeded(
            f"At most {limit} spots per customer for this event (you hold {already}).",
            field="quantity" if quantity else "spot_ids",
        )
    with busy_on_lock_failure(session):
        if spot_ids:
            spots = _lock_chosen(session, event_id, sorted(set(spot_ids)), now)
        else:
            spots = _lock_best(session, event_id, section_id, wanted, now)
        hold = Hold(
            customer_id=customer_id,
            event_id=event_id,
            created_at=now,
            expires_at=now + hold_duration(),
        )
        session.add(hold)
        session.flush()
        for spot in spots:
            spot.hold_for(hold.id, hold.expires_at, now)
        session.commit()
    return hold


def _lock_chosen(
    session: Session, event_id: int, spot_ids: list[int], now: dt.datetime
) -> list[EventSpot]:
    spots = session.scalars(
        select(EventSpot)
        .where(EventSpot.id.in_(spot_ids), EventSpot.event_id == event_id)
        .order_by(EventSpot.id)
        .with_for_update()
    ).all()
    if len(spots) != len(spot_ids):
        raise NotFound("Some of these spots do not exist in this event.", field="spot_ids")
    taken = [spot for spot in spots if not spot.is_free(now)]
    if taken:
        session.rollback()
        raise SpotsUnavailable(
            "Some of these spots were just taken: " + ", ".join(s.label for s in taken) + ".",
            spots=[{"id": s.id, "label": s.label} for s in taken],
        )
    return list(spots)


def _lock_best(
    session: Session, event_id: int, section_id: int | None, quantity: int, now: dt.datetime
) -> list[EventSpot]:
    """Lock the best free spots nobody else is locking (SKIP LOCKED). When the free spots left
    are all being locked by other buyers, wait briefly and look again: they may release some."""
    section = session.get(EventSection, section_id) if section_id else None
    if section is None or section.event_id != event_id:
        raise NotFound("Section not found in this event.", field="section_id")
    for attempt in range(BEST_AVAILABLE_ATTEMPTS):
        candidates = session.scalars(
            select(EventSpot)
            .where(EventSpot.section_id == section.id, EventSpot.free_clause(now))
            .order_by(EventSpot.position)
            .limit(max(BEST_AVAILABLE_WINDOW, quantity * 4))
            .with_for_update(skip_locked=True)
        ).all()
        chosen = best_block(candidates, quantity)
        if len(chosen) == quantity:
            return chosen
        session.rollback()
        free = session.scalar(
            select(func.count()).where(
                EventSpot.section_id == section.id, EventSpot.free_clause(now)
            )
        )
        if free < quantity:
            raise SpotsUnavailable(
                f"Not enough spots left in {section.name}: {free} free right now.", spots=[]
            )
        time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311 - jitter
    raise Busy("Many people are buying in this section right now: try again.")


def best_block(candidates: Sequence[EventSpot], quantity: int) -> list[EventSpot]:
    """The first run of ``quantity`` adjacent seats in one row, else the first free ones."""
    for _, group in groupby(candidates, key=lambda s: s.row_label):
        row = list(group)
        for start in range(len(row) - quantity + 1):
            run = row[start : start + quantity]
            numbers = [s.seat_number for s in run]
            if None not in numbers and numbers == list(range(numbers[0], numbers[0] + quantity)):
                return run
    return list(candidates[:quantity])


def spots_of_hold(session: Session, hold_id: int, *, lock: bool = False) -> list[EventSpot]:
    """The spots a hold holds now, with their sections (one query), locked in id order when
    ``lock``."""
    query = (
        select(EventSpot)
        .where(EventSpot.hold_id == hold_id, EventSpot.status == SpotStatus.HELD)
        .options(joinedload(EventSpot.section))
        .order_by(EventSpot.id)
    )
    if lock:
        query = query.with_for_update(of=EventSpot)
    return list(session.scalars(query))


def hold_total(spots: list[EventSpot]) -> int:
    return sum(spot.section.price_cents for spot in spots)


def get_customer_hold(session: Session, customer_id: int, hold_id: int) -> Hold:
    hold = session.get(Hold, hold_id)
    if hold is None or hold.customer_id != customer_id:
        raise NotFound("Hold not found.")
    return hold


def release_hold(session: Session, customer_id: int, hold_id: int) -> Hold:
    """The customer gives the spots back."""
    with busy_on_lock_failure(session):
        hold = session.scalars(
            select(Hold)
            .where(Hold.id == hold_id, Hold.customer_id == customer_id)
            .with_for_update()
        ).first()
        if hold is None:
            raise NotFound("Hold not found.")
        if hold.status == HoldStatus.CONVERTED:
            raise Conflict("This hold was paid for: its tickets are in your orders.")
        _free(session, hold, HoldStatus.RELEASED)
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
        _free(session, hold, HoldStatus.EXPIRED)
    session.commit()
    return len(holds)


def _free(session: Session, hold: Hold, status: HoldStatus) -> None:
    """Give the hold's spots back; its unpaid order (priced at a checkout attempt) is void."""
    for spot in spots_of_hold(session, hold.id, lock=True):
        spot.release()
    if hold.status == HoldStatus.ACTIVE:
        hold.status = status.value
    order = session.scalar(select(Order).where(Order.hold_id == hold.id))
    if (
        order is not None
        and order.status == OrderStatus.PENDING
        and not any(p.status == PaymentStatus.PENDING for p in order.payments)
    ):
        order.cancel(f"hold_{status.value}")
