"""What a hold holds, as the purchase path answers it: its spots with the prices it quoted
(HeldSpot, HoldSummary, no ORM objects), a customer's hold and their live carts. Placing a hold is
hold.py's; releasing one, release.py's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from app.models import EventSpot, Hold, HoldStatus, NotFound, SpotStatus
from app.models.base import utcnow
from app.models.order import hold_is_live, hold_seconds_left


@dataclass(frozen=True)
class HeldSpot:
    id: int
    label: str
    section_id: int
    section: str
    price_cents: int  # quoted when held: what checkout charges
    ticket_type: str | None = None  # its type's name (None: the section's full price)
    discount_cents: int = 0  # what a promo code took off (the price before it: the sum)
    promo_code: str | None = None

    @property
    def gross_cents(self) -> int:
        return self.price_cents + self.discount_cents


@dataclass(frozen=True)
class HoldSummary:
    """A hold and the spots it holds, as the purchase path answers it (no ORM objects)."""

    id: int
    customer_id: int
    event_id: int
    status: str
    created_at: dt.datetime
    expires_at: dt.datetime
    spots: tuple[HeldSpot, ...]
    replayed: bool = False  # the answer to a request asked again under its Idempotency-Key

    @property
    def total_cents(self) -> int:
        return sum(spot.price_cents for spot in self.spots)

    @property
    def gross_cents(self) -> int:
        return sum(spot.gross_cents for spot in self.spots)

    @property
    def discount_cents(self) -> int:
        return sum(spot.discount_cents for spot in self.spots)

    def is_live(self, now: dt.datetime) -> bool:
        return hold_is_live(self.status, self.expires_at, now)

    def seconds_left(self, now: dt.datetime) -> int:
        return hold_seconds_left(self.status, self.expires_at, now)

    @classmethod
    def of(cls, session: Session, hold: Hold) -> HoldSummary:
        spots = spots_of_hold(session, hold.id)
        return cls(
            hold.id,
            hold.customer_id,
            hold.event_id,
            hold.status,
            hold.created_at,
            hold.expires_at,
            tuple(
                HeldSpot(
                    s.id,
                    s.label,
                    s.section_id,
                    s.section.name,
                    s.held_price_cents,
                    s.held_ticket_type.name if s.held_ticket_type else None,
                    s.held_discount_cents or 0,
                    s.held_promo_code.code if s.held_promo_code else None,
                )
                for s in spots
            ),
        )


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
    """What paying for these held spots costs: the prices their hold quoted."""
    return sum(spot.held_price_cents for spot in spots)  # set on every held spot


def get_customer_hold(session: Session, customer_id: int, hold_id: int) -> Hold:
    hold = session.get(Hold, hold_id)
    if hold is None or hold.customer_id != customer_id:
        raise NotFound(gettext("Hold not found."))
    return hold


def customer_carts(
    session: Session, customer_id: int, event_id: int | None = None, now: dt.datetime | None = None
) -> list[HoldSummary]:
    """The customer's live holds (for one event, or all), newest first: what they hold, for how
    long."""
    now = now or utcnow()
    query = select(Hold).where(
        Hold.customer_id == customer_id,
        Hold.status == HoldStatus.ACTIVE,
        Hold.expires_at > now,
    )
    if event_id is not None:
        query = query.where(Hold.event_id == event_id)
    holds = session.scalars(query.order_by(Hold.id.desc())).all()
    return [summary for h in holds if (summary := HoldSummary.of(session, h)).spots]
