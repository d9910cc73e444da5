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
from flask_babel import gettext
from sqlalchemy import (
    Connection,
    DateTime,
    Integer,
    Interval,
    Row,
    bindparam,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from app import metrics
from app.i18n import N_
from app.models import DomainError, Event, EventStatus, NotFound, Partner
from app.models.base import utcnow
from app.models.event import SALE_COLUMNS, sale_window
from app.models.waiting_room import WaitingEntry, WaitingLine
from app.services.locking import busy_on_lock_failure

OPEN = "open"  # the event has no waiting room: hold at will
WAITING = "waiting"
ADMITTED = "admitted"
NOT_IN_LINE = "not_in_line"  # never joined, turn over, or a purchase ended it


LINE_BUSY = N_("Many people are joining the line right now: try again.")


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


def line_is_open(event: Event, now: dt.datetime) -> bool:
    """Whether buyers may join the event's line: its sales are open, or will be at their
    opening (the line forms before it)."""
    return event.is_on_sale(max(now, event.sales_start or now))


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
            gettext(
                "You are in the waiting room: your turn comes in about %(duration)s.",
                duration=_duration(turn.wait(now)),
            ),
            admit_at=turn.admit_at.isoformat() if turn.admit_at else None,
            retry_after=turn.retry_after(now),
            wait_ms=int(turn.wait(now).total_seconds() * 1000),
        )
    raise NotYourTurn(gettext("This on-sale has a waiting room: join the line to buy."))


def _duration(span: dt.timedelta) -> str:
    seconds = max(1, math.ceil(span.total_seconds()))
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


_event, _partner = Event.__table__, Partner.__table__
_line, _entry = WaitingLine.__table__, WaitingEntry.__table__

# The event's sale window and rate, and the customer's place in its line: one read.
_READ = (
    select(
        *SALE_COLUMNS,
        _event.c.waiting_room_per_minute,
        _entry.c.admit_at,
    )
    .select_from(
        _event.join(_partner, _partner.c.id == _event.c.partner_id).outerjoin(
            _entry,
            (_entry.c.event_id == _event.c.id) & (_entry.c.customer_id == bindparam("customer_id")),
        )
    )
    .where(_event.c.id == bindparam("event_id"))
)

# A place is taken in one statement, in autocommit: the line's row is locked only
# while the statement runs (a flash crowd joins through this one row; a lock held across round
# trips, and a thread waiting for the GIL in between, would make every joiner wait in turn).
_OPENING = bindparam("opening", type_=DateTime)
_STEP, _BURST = bindparam("step", type_=Interval), bindparam("burst", type_=Interval)
_NEXT_SLOT = (
    pg_insert(_line)
    .values(event_id=bindparam("b_event_id"), next_slot=_OPENING + _STEP)
    .on_conflict_do_update(
        index_elements=[_line.c.event_id],
        set_={"next_slot": func.greatest(_line.c.next_slot, _OPENING) + _STEP},
    )
    .returning(_line.c.next_slot)
    .cte("line")
)
_new_entry = pg_insert(_entry).from_select(
    ["event_id", "customer_id", "joined_at", "admit_at"],
    select(
        bindparam("b_event_id", type_=Integer),
        bindparam("b_customer_id", type_=Integer),
        bindparam("now", type_=DateTime),
        func.greatest(_OPENING, _NEXT_SLOT.c.next_slot - _STEP - _BURST),
    ),
)
_JOIN_AT_ONCE = (
    _new_entry.on_conflict_do_update(
        index_elements=[_entry.c.event_id, _entry.c.customer_id],
        set_={"joined_at": _new_entry.excluded.joined_at, "admit_at": _new_entry.excluded.admit_at},
        where=_entry.c.admit_at <= bindparam("over_if_admitted_before", type_=DateTime),
    )
    .returning(_entry.c.admit_at)
    .add_cte(_NEXT_SLOT)
)


# The customer's place in the event's line, if any (the hold reads it in its first statement).
ADMIT_AT = select(_entry.c.admit_at).where(
    _entry.c.event_id == bindparam("event_id"), _entry.c.customer_id == bindparam("customer_id")
)


def _read(conn: Connection, event_id: int, customer_id: int) -> Row:
    row = conn.execute(_READ, {"event_id": event_id, "customer_id": customer_id}).first()
    if row is None or row.status == EventStatus.DRAFT:
        raise NotFound(gettext("Event not found."))
    return row


def status(
    session: Session, customer_id: int, event_id: int, now: dt.datetime | None = None
) -> Turn:
    """The customer's turn for the event (one read; changes nothing)."""
    now = now or utcnow()
    row = _read(session.connection(), event_id, customer_id)
    return turn_of(event_id, row.waiting_room_per_minute, row.admit_at, now)


def turn_at(session: Session, event: Event, customer_id: int, now: dt.datetime) -> Turn:
    """The customer's turn at an event already loaded: their place is read only if it has a
    line."""
    rate = event.waiting_room_per_minute
    if rate is None:
        return Turn(event.id, OPEN)
    ids = {"event_id": event.id, "customer_id": customer_id}
    return turn_of(event.id, rate, session.scalar(ADMIT_AT, ids), now)


def join(session: Session, customer_id: int, event_id: int, now: dt.datetime | None = None) -> Turn:
    """Take a place in the event's line (keeping the one the customer has).

    The line may form before the sales open: places are then given out from the opening."""
    now = now or utcnow()
    with busy_on_lock_failure(session, LINE_BUSY), session.get_bind().connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return _join(conn, customer_id, event_id, now)


def _join(conn: Connection, customer_id: int, event_id: int, now: dt.datetime) -> Turn:
    row = _read(conn, event_id, customer_id)
    # The line forms before the sales open: it must be open then (or now, if already open).
    opening = max(now, row.sales_start or now)
    sale_window(row).require_open(opening)
    rate = row.waiting_room_per_minute
    current = turn_of(event_id, rate, row.admit_at, now)
    if current.status != NOT_IN_LINE:
        return current
    step = interval_of(rate)
    # GCRA's tolerance: the first buyer after a quiet spell and BURST - 1 more come in at once.
    burst = step * (max(1, current_app.config["WAITING_ROOM_BURST"]) - 1)
    admit_at = conn.execute(
        _JOIN_AT_ONCE,
        {
            "b_event_id": event_id,
            "b_customer_id": customer_id,
            "now": now,
            "opening": opening,
            "step": step,
            "burst": burst,
            "over_if_admitted_before": now - turn_length(),
        },
    ).scalar()
    if admit_at is None:  # the same customer joined a moment ago, in another request
        admit_at = _read(conn, event_id, customer_id).admit_at
    else:
        metrics.WAITING_JOINED.inc()
    return turn_of(event_id, rate, admit_at, now)


def leave(session: Session, customer_id: int, event_id: int) -> None:
    """Give up one's place (or the rest of one's turn); commits."""
    _read(session.connection(), event_id, customer_id)
    end_turn(session.connection(), event_id, customer_id)
    session.commit()


def end_turn(
    conn: Connection, event_id: int, customer_id: int, began_by: dt.datetime | None = None
) -> None:
    """The customer's turn is over (in the caller's transaction): a purchase ends the turn its
    hold was made in (one that ``began_by`` the hold), not a place taken since."""
    query = delete(_entry).where(_entry.c.event_id == event_id, _entry.c.customer_id == customer_id)
    if began_by is not None:
        query = query.where(_entry.c.admit_at <= began_by)
    conn.execute(query)
