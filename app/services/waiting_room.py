"""Waiting room: buyers of a high-demand on-sale come in to choose spots at the event's rate,
first come, first served (app/models/waiting_room.py says how turns are given out).

Why: without it every buyer of a flash crowd is inside the purchase path at once, and each
request waits for all the others (bench/onsale.py: 200 buyers that never pause make a request
take 200 / requests-per-second, about half a second at the best this machine does). With it, the
crowd waits where waiting is cheap and honest, knowing its turn, and those let in buy at once.

The gate is the hold: an event with ``waiting_room_per_minute`` holds spots only for a customer
whose turn it is (read in the statement that already locks the customer, so it costs nothing).
Paying is never gated. A turn lasts ``WAITING_ROOM_TURN_MINUTES`` and ends with a purchase:
to buy again, the customer joins the line again.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import Connection, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Conflict, DomainError, Event, EventStatus, NotFound, Partner
from app.models.base import utcnow
from app.models.event import SaleWindow
from app.models.waiting_room import WaitingEntry, WaitingLine

OPEN = "open"  # the event has no waiting room: hold at will
WAITING = "waiting"
ADMITTED = "admitted"
NOT_IN_LINE = "not_in_line"  # never joined, turn over, or a purchase ended it


class NotYourTurn(DomainError):
    """A hold asked for before the customer's turn (or after it ended)."""

    status = 403
    code = "waiting_room"


@dataclass(frozen=True)
class Turn:
    """Where a customer stands in an event's waiting room."""

    event_id: int
    status: str
    admit_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    interval: dt.timedelta | None = None  # between two buyers let in

    def wait(self, now: dt.datetime) -> dt.timedelta:
        if self.status != WAITING or self.admit_at is None:
            return dt.timedelta(0)
        return max(self.admit_at - now, dt.timedelta(0))

    def ahead(self, now: dt.datetime) -> int:
        """About how many buyers come in before this one."""
        if self.interval is None or self.status != WAITING:
            return 0
        return math.ceil(self.wait(now) / self.interval)

    def retry_after(self, now: dt.datetime) -> int:
        """Whole seconds to wait before asking again (HTTP Retry-After)."""
        return max(1, math.ceil(self.wait(now).total_seconds()))


def interval_of(per_minute: int) -> dt.timedelta:
    return dt.timedelta(minutes=1) / per_minute


def turn_length() -> dt.timedelta:
    return dt.timedelta(minutes=current_app.config["WAITING_ROOM_TURN_MINUTES"])


def turn_of(
    event_id: int,
    per_minute: int | None,
    admit_at: dt.datetime | None,
    now: dt.datetime,
) -> Turn:
    """A customer's turn from the event's rate and their admission time (None: not in line)."""
    if per_minute is None:
        return Turn(event_id, OPEN)
    if admit_at is None:
        return Turn(event_id, NOT_IN_LINE, interval=interval_of(per_minute))
    ends_at = admit_at + turn_length()
    if now >= ends_at:
        return Turn(event_id, NOT_IN_LINE, interval=interval_of(per_minute))
    status = ADMITTED if now >= admit_at else WAITING
    return Turn(event_id, status, admit_at, ends_at, interval_of(per_minute))


def require_turn(turn: Turn, now: dt.datetime) -> None:
    """NotYourTurn unless the customer may hold spots now."""
    if turn.status in (OPEN, ADMITTED):
        return
    if turn.status == WAITING:
        raise NotYourTurn(
            f"You are in the waiting room: your turn comes in about {_duration(turn.wait(now))}.",
            admit_at=turn.admit_at.isoformat() if turn.admit_at else None,
            retry_after=turn.retry_after(now),
        )
    raise NotYourTurn("This on-sale has a waiting room: join the line to buy.")


def _duration(span: dt.timedelta) -> str:
    seconds = max(1, math.ceil(span.total_seconds()))
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


def _event_row(session: Session, event_id: int) -> tuple[Event | None, str | None]:
    row = session.execute(
        select(Event, Partner.status)
        .join(Partner, Partner.id == Event.partner_id)
        .where(Event.id == event_id)
    ).first()
    if row is None or row[0].status == EventStatus.DRAFT:
        raise NotFound("Event not found.")
    return row[0], row[1]


def _admit_at(session: Session, event_id: int, customer_id: int) -> dt.datetime | None:
    return session.scalar(
        select(WaitingEntry.admit_at).where(
            WaitingEntry.event_id == event_id, WaitingEntry.customer_id == customer_id
        )
    )


def status(
    session: Session, customer_id: int, event_id: int, now: dt.datetime | None = None
) -> Turn:
    """The customer's turn for the event (reads; changes nothing)."""
    now = now or utcnow()
    event, _ = _event_row(session, event_id)
    admit_at = _admit_at(session, event_id, customer_id) if event.waiting_room_per_minute else None
    return turn_of(event_id, event.waiting_room_per_minute, admit_at, now)


def join(session: Session, customer_id: int, event_id: int, now: dt.datetime | None = None) -> Turn:
    """Take a place in the event's line (keeping the one the customer has); commits.

    The line may form before the sales open: places are then given out from the opening."""
    now = now or utcnow()
    event, partner_status = _event_row(session, event_id)
    rate = event.waiting_room_per_minute
    window = SaleWindow(
        event.name,
        event.status,
        partner_status or "",
        event.sales_start,
        event.sales_end,
        event.starts_at,
    )
    before_opening = (
        event.status == EventStatus.PUBLISHED
        and event.sales_start is not None
        and now < event.sales_start
    )
    if not before_opening:
        window.require_open(now)
    if rate is None:
        session.rollback()
        return Turn(event_id, OPEN)
    current = turn_of(event_id, rate, _admit_at(session, event_id, customer_id), now)
    if current.status != NOT_IN_LINE:
        session.rollback()
        return current
    opening = max(now, event.sales_start or now)
    for _ in range(2):  # the first two buyers of an event may both create its line
        try:
            admit_at = _take_place(session, event_id, customer_id, rate, opening, now)
            session.commit()
            break
        except IntegrityError:
            session.rollback()
            existing = _admit_at(session, event_id, customer_id)
            if existing is not None:  # the same customer joined twice at once
                return turn_of(event_id, rate, existing, now)
    else:
        raise Conflict("The line is busy: try again.")
    return turn_of(event_id, rate, admit_at, now)


def _take_place(
    session: Session,
    event_id: int,
    customer_id: int,
    per_minute: int,
    opening: dt.datetime,
    now: dt.datetime,
) -> dt.datetime:
    """GCRA: the line's next slot (locked) gives the newcomer's admission time and moves on."""
    step = interval_of(per_minute)
    burst = step * current_app.config["WAITING_ROOM_BURST"]
    line = session.scalars(
        select(WaitingLine).where(WaitingLine.event_id == event_id).with_for_update()
    ).first()
    if line is None:
        line = WaitingLine(event_id=event_id, next_slot=opening)
        session.add(line)
    slot = max(line.next_slot, opening)
    admit_at = max(opening, slot - burst)
    line.next_slot = slot + step
    session.execute(
        delete(WaitingEntry).where(
            WaitingEntry.event_id == event_id, WaitingEntry.customer_id == customer_id
        )
    )  # a turn that ran out
    session.add(
        WaitingEntry(event_id=event_id, customer_id=customer_id, joined_at=now, admit_at=admit_at)
    )
    session.flush()
    return admit_at


def leave(session: Session, customer_id: int, event_id: int) -> None:
    """Give up one's place (or the rest of one's turn); commits."""
    _event_row(session, event_id)
    end_turn(session.connection(), event_id, customer_id)
    session.commit()


def end_turn(conn: Connection, event_id: int, customer_id: int) -> None:
    """The customer's turn is over (in the caller's transaction): a purchase ends it."""
    conn.execute(
        delete(WaitingEntry).where(
            WaitingEntry.event_id == event_id, WaitingEntry.customer_id == customer_id
        )
    )
