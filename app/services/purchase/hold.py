"""Holds: a customer's short claim on spots before paying (ARCHITECTURE.md, "The purchase path",
step 1).

Placing a hold is one transaction: the customer's row is locked (their holds are counted one at
a time against MAX_SPOTS_PER_EVENT), the event must sell and the waiting room let the customer
in, then the spots are locked in id order (``SKIP LOCKED`` for best-available, which picks
adjacent seats among a window of free ones) under the short lock timeout: a taken spot is
SpotsUnavailable naming it (409), a lock not had in time Busy (503). The hold and its spots are
written in one statement, each spot with the price the hold quotes for it (its section's price
as read with the spot's lock): checkout charges that price, whatever the section's becomes. A
hold's spots are free again the moment it expires (EventSpot.free_clause); the customer may
release it before, and a beat task releases expired ones (release_expired_holds), voiding their
unpaid orders.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from itertools import groupby
from typing import Any

from flask import current_app
from flask_babel import gettext
from sqlalchemy import Connection, Integer, Row, bindparam, func, insert, select
from sqlalchemy.orm import Session

from app import metrics
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
    Partner,
    SectionKind,
    SpotStatus,
)
from app.models.base import utcnow
from app.models.event import SALE_COLUMNS, sale_window
from app.services import waiting_room
from app.services.locking import busy_on_lock_failure
from app.services.pg_writes import row_count, rows_of_arrays
from app.services.purchase import cart, promo_codes, sold_out, ticket_types, waitlist_line
from app.services.purchase.summary import HeldSpot, HoldSummary

# How many free rows best-available locks (SKIP LOCKED) to choose adjacent seats among: wide
# enough for adjacent seats, narrow enough to leave rows for concurrent buyers
# (``best_available_window``).
BEST_AVAILABLE_WINDOW = 12
# How often best-available looks again when every free spot is locked by other buyers.
BEST_AVAILABLE_ATTEMPTS = 20


class SpotsUnavailable(Conflict):
    code = "spots_unavailable"


class HoldLimitExceeded(DomainError):
    code = "hold_limit"


class _Replayed(Exception):
    """The request was done before under its key: its cart is answered again."""

    def __init__(self, hold_id: int) -> None:
        self.hold_id = hold_id


def hold_duration() -> dt.timedelta:
    return dt.timedelta(minutes=current_app.config["HOLD_MINUTES"])


_customer, _event, _partner = Customer.__table__, Event.__table__, Partner.__table__
_section, _spot, _hold = EventSection.__table__, EventSpot.__table__, Hold.__table__

# The purchase path runs as Core statements built once (the ORM's unit of work cost more CPU
# than the database did). One customer's holds are counted one at a time: the customer row is
# locked, in the statement that reads whether the event sells.
_FREE = EventSpot.free_clause(bindparam("now"))
# Whether best-available's section still has the spots wanted (counting no further): a sold-out
# section, which every late buyer asks about, answers without any other statement. Read with the
# customer's lock, it may miss spots freed while that lock was waited for (the same customer's
# other request): as if the buyer had asked a moment earlier.
_FREE_UP_TO_WANTED = (
    select(func.count())
    .select_from(
        select(_spot.c.id)
        .where(
            _spot.c.section_id == bindparam("section_id"),
            EventSpot.open_clause(),
            _FREE,
        )
        .limit(bindparam("wanted"))
        .subquery()
    )
    .scalar_subquery()
)
# The customer is locked only when the request may take spots: a sold-out section (which every
# late buyer asks about) is refused by a statement that locks nothing, so its transaction writes
# nothing and its commit waits for no WAL flush (chosen spots are checked once locked).
_LOCKED_CUSTOMER = (
    select(_customer.c.id)
    .where(
        _customer.c.id == bindparam("customer_id"),
        bindparam("section_id", type_=Integer).is_(None)
        | (bindparam("wanted") <= _FREE_UP_TO_WANTED),
    )
    # FOR NO KEY UPDATE: serialises the customer's holds without blocking the key-share lock
    # that inserting the customer's order takes (FOR UPDATE could deadlock with a checkout).
    .with_for_update(key_share=True)
    .cte("locked_customer")
)
_LOCK_CUSTOMER_READ_EVENT = (
    select(
        *SALE_COLUMNS,
        _section.c.name.label("section_name"),  # best-available's section, if of this event
        _section.c.kind.label("section_kind"),
        _section.c.hidden.label("section_hidden"),
        _FREE_UP_TO_WANTED.label("free_up_to_wanted"),
        _event.c.waiting_room_per_minute,
        waiting_room.ADMIT_AT.scalar_subquery().label("admit_at"),
        waitlist_line.WAITING_SECTIONS.label("waiting_sections"),
        # read so that the CTE runs (and locks, when its condition holds)
        select(_LOCKED_CUSTOMER.c.id).scalar_subquery().label("locked_customer"),
    )
    .select_from(
        _customer.join(_event, _event.c.id == bindparam("event_id"))
        .join(_partner, _partner.c.id == _event.c.partner_id)
        .outerjoin(
            _section,
            (_section.c.id == bindparam("section_id")) & (_section.c.event_id == _event.c.id),
        )
    )
    .where(_customer.c.id == bindparam("customer_id"))
)
# How many spots the customer holds for the event, read after the customer's lock (so it sees
# every hold of theirs before). The statements that lock spots lock none past the limit: a
# customer over it locks nothing (and learns why from a count of its own, on that rare path).
_their_spot, _their_hold = _spot.alias("their_spot"), _hold.alias("their_hold")
_COUNT_HELD = (
    select(func.count())
    .select_from(_their_spot.join(_their_hold, _their_hold.c.id == _their_spot.c.hold_id))
    .where(
        _their_hold.c.customer_id == bindparam("customer_id"),
        _their_hold.c.event_id == bindparam("event_id"),
        _their_hold.c.status == HoldStatus.ACTIVE.value,
        _their_hold.c.expires_at > bindparam("now"),
        _their_spot.c.status == SpotStatus.HELD.value,
    )
)
_WITHIN_LIMIT = _COUNT_HELD.scalar_subquery() + bindparam("wanted") <= bindparam("spot_limit")
_SPOT_COLUMNS = (
    _spot.c.id,
    _spot.c.label,
    _spot.c.section_id,
    _section.c.name,
    _section.c.price_cents,
    _section.c.hidden.label("section_hidden"),
    _spot.c.row_label,
    _spot.c.seat_number,
    _spot.c.status,
    _spot.c.held_until,
)
_LOCK_CHOSEN = (
    select(*_SPOT_COLUMNS)
    .select_from(_spot.join(_section, _section.c.id == _spot.c.section_id))
    .where(
        _spot.c.id.in_(bindparam("ids", expanding=True)),
        _spot.c.event_id == bindparam("event_id"),
        _WITHIN_LIMIT,
    )
    .order_by(_spot.c.id)
    .with_for_update(of=_spot)
)
_LOCK_BEST = (
    select(*_SPOT_COLUMNS)
    .select_from(_spot.join(_section, _section.c.id == _spot.c.section_id))
    .where(
        _spot.c.section_id == bindparam("section_id"),
        EventSpot.open_clause(),
        _FREE,
        _WITHIN_LIMIT,
    )
    .order_by(_spot.c.position)
    .limit(bindparam("window"))
    .with_for_update(of=_spot, skip_locked=True)
)
_FREE_IN_SECTION = select(func.count()).where(
    _spot.c.section_id == bindparam("section_id"), EventSpot.open_clause(), _FREE
)
# The hold and its spots in one statement (data-modifying CTEs), answering the
# new hold's id and how many spots it took.
_NEW_HOLD = (
    insert(_hold)
    .values(
        customer_id=bindparam("b_customer_id"),
        event_id=bindparam("b_event_id"),
        status=HoldStatus.ACTIVE.value,
        created_at=bindparam("now"),
        expires_at=bindparam("until"),
    )
    .returning(_hold.c.id)
    .cte("new_hold")
)
# Each spot keeps the price quoted to the customer: the one read with its lock (a section's
# price the partner changes meanwhile is not this hold's).
_QUOTED = rows_of_arrays(
    spot_id=("b_spot_ids", Integer),
    price_cents=("b_prices", Integer),
    ticket_type_id=("b_types", Integer),
    promo_code_id=("b_promo_codes", Integer),
    discount_cents=("b_discounts", Integer),
)


def _held_by(hold_id: Any) -> Any:
    """The quoted spots (``quoted_columns``) held by ``hold_id`` until ``until``, answering
    their ids."""
    return (
        EventSpot.HOLD.update(
            _spot,
            _spot.c.id == _QUOTED.c.spot_id,
            hold_id=hold_id,
            held_until=bindparam("until"),
            held_price_cents=_QUOTED.c.price_cents,
            held_ticket_type_id=_QUOTED.c.ticket_type_id,
            held_request_key=bindparam("b_request_key"),
            held_promo_code_id=_QUOTED.c.promo_code_id,
            held_discount_cents=_QUOTED.c.discount_cents,
        )
        .returning(_spot.c.id)
        .cte("held")
    )


def quoted_columns(
    spots: Sequence[Any], quotes: Sequence[promo_codes.Quote], request_key: str | None = None
) -> dict[str, Any]:
    """The parameters of a statement that holds ``spots`` at their ``quotes`` (_HOLD_AT_ONCE,
    _ADD_TO_CART)."""
    return {
        "b_spot_ids": [s.id for s in spots],
        "b_prices": [q.price_cents for q in quotes],
        "b_types": [q.kind.id if q.kind else None for q in quotes],
        "b_promo_codes": [q.promo_code_id for q in quotes],
        "b_discounts": [q.discount_cents if q.promo_code_id else None for q in quotes],
        "b_request_key": request_key,
    }


_HOLD_AT_ONCE = select(
    _NEW_HOLD.c.id, row_count(_held_by(select(_NEW_HOLD.c.id).scalar_subquery()))
)
# The customer's live hold holding spots a request under this Idempotency-Key took.
_TAKEN_UNDER_KEY = (
    select(_hold.c.id)
    .select_from(_spot.join(_hold, _hold.c.id == _spot.c.hold_id))
    .where(
        _spot.c.event_id == bindparam("event_id"),
        _spot.c.held_request_key == bindparam("request_key"),
        _spot.c.status == SpotStatus.HELD.value,
        _hold.c.customer_id == bindparam("customer_id"),
        _hold.c.status == HoldStatus.ACTIVE.value,
        _hold.c.expires_at > bindparam("now"),
    )
    .limit(1)
)


def taken_under_key(conn: Connection, ids: dict[str, Any]) -> int | None:
    """The id of the customer's live hold (``customer_id``) for ``event_id`` that holds spots a
    hold request under ``request_key`` took at ``now``, if one does: the request is asked
    again, and answers that cart. None: the key took nothing still held."""
    return conn.execute(_TAKEN_UNDER_KEY, ids).scalar()


# The spots added to a cart: held by it until it expires, at the prices quoted now.
_ADD_TO_CART = select(row_count(_held_by(bindparam("b_hold_id"))))


def reserve_spots(
    session: Session,
    customer_id: int,
    event_id: int,
    *,
    spot_ids: Sequence[int] | None = None,
    section_id: int | None = None,
    quantity: int | None = None,
    ticket_type_ids: Sequence[int] | None = None,
    promo_code: str | None = None,
    request_key: str | None = None,
    now: dt.datetime | None = None,
) -> HoldSummary:
    """Hold the chosen spots, or the best ``quantity`` in a section, for ``HOLD_MINUTES``.
    ``ticket_type_ids``: one type per ticket (in the order of ``spot_ids``); None: every
    ticket at the section's full price. ``promo_code``: a code of the event's partner giving
    every ticket held its discount (purchase/promo_codes.py), and unlocking its hidden section
    or type. ``request_key``: the client's Idempotency-Key, if it sent one: asked again while
    the spots it took are held, the request answers the cart (``replayed``) and takes nothing
    more.

    The customer's live hold for the event is their cart: the spots are added to it (until it
    expires: adding does not restart its time) and the whole cart is answered; without one, a
    new hold is placed. A cart whose checkout was tried and declined loses that unpaid order
    (the next checkout prices the whole cart); one being paid right now refuses (CartBeingPaid).

    Locks rows in id order (``SKIP LOCKED`` for best-available); a taken spot raises
    SpotsUnavailable naming it; a lock not had in time raises Busy.
    """
    now = now or utcnow()
    session.flush()  # Core statements below: nothing of the caller's may wait in the session
    wanted = len(set(spot_ids)) if spot_ids else (quantity or 0)
    ids = {
        "customer_id": customer_id,
        "event_id": event_id,
        "now": now,
        "section_id": section_id,
        "wanted": max(wanted, 0),
        "ticket_types": list(ticket_type_ids) if ticket_type_ids else None,
        "spot_order": list(spot_ids) if spot_ids else None,
        "promo_code": promo_codes.asked_code(promo_code),
        "request_key": request_key,
    }
    for attempt in range(BEST_AVAILABLE_ATTEMPTS):
        with busy_on_lock_failure(session):
            try:
                spots = _lock_spots(session, ids, spot_ids, wanted)
            except _Replayed as replayed:
                session.rollback()
                summary = HoldSummary.of(session, session.get(Hold, replayed.hold_id))
                return replace(summary, replayed=True)
            if spots is not None:
                hold_id, expires_at = _place_hold(session, ids, spots)
                break
        # Every free spot left in the section is being locked by other buyers: they may
        # release some. Look again in a new transaction (the limit is counted again too).
        time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311 - jitter
    else:
        raise Busy(gettext("Many people are buying in this section right now: try again."))
    metrics.HOLDS.labels("created").inc(len(spots))
    if ids.get("admitted"):
        metrics.WAITING_ADMITTED.inc()
    session.expire_all()  # objects the caller loaded before see the spots held
    if ids["cart"] is not None:  # the whole cart, created when its first spots were held
        return HoldSummary.of(session, session.get(Hold, hold_id))
    return HoldSummary(
        hold_id,
        customer_id,
        event_id,
        HoldStatus.ACTIVE.value,
        now,
        expires_at,
        tuple(
            HeldSpot(
                s.id,
                s.label,
                s.section_id,
                s.name,
                quote.price_cents,
                quote.kind.name if quote.kind else None,
                quote.discount_cents,
                ids["promo"].code if quote.promo_code_id else None,
            )
            for s, quote in zip(spots, ids["quote"], strict=True)
        ),
    )


def _lock_spots(
    session: Session,
    ids: dict[str, Any],
    spot_ids: Sequence[int] | None,
    wanted: int,
) -> list[Row] | None:
    """In one transaction: the customer locked (their holds are counted one at a time), the
    event on sale, the limit kept, the spots locked. None (rolled back) when best-available
    found every free spot locked by other buyers."""
    conn = session.connection()
    now = ids["now"]
    row = conn.execute(_LOCK_CUSTOMER_READ_EVENT, ids).first()
    if row is None or row.status == EventStatus.DRAFT:
        raise NotFound(gettext("Event not found."))
    sale_window(row).require_open(now)
    if ids["request_key"] is not None:  # read after the customer's lock, when it was taken
        done = taken_under_key(conn, ids)
        if done is not None:
            raise _Replayed(done)
    turn = waiting_room.turn_of(ids["event_id"], row.waiting_room_per_minute, row.admit_at, now)
    waiting_room.require_turn(turn, now)
    ids["admitted"] = turn.status == waiting_room.ADMITTED
    field = "spot_ids" if spot_ids else "quantity"
    if wanted < 1:
        raise DomainError(gettext("Choose at least one spot."), field=field)
    limit = current_app.config["MAX_SPOTS_PER_EVENT"]
    if wanted > limit:
        _keep_limit(conn, ids, wanted, field)
    # Lock order: customer, promo code, ticket types, spots (promo_codes.py, ticket_types.py).
    promo = ids["promo"] = promo_codes.lock(conn, ids, wanted)
    ids["unlocked_type"] = promo.ticket_type_id if promo else None
    if not spot_ids:
        # no section_id, not one of this event's, or a presale's without its code
        if row.section_name is None or (
            row.section_hidden and not (promo and promo.unlocks_section(ids["section_id"]))
        ):
            raise NotFound(gettext("Section not found in this event."), field="section_id")
        if row.free_up_to_wanted < wanted:
            raise _not_enough(ids, row.section_name, row.free_up_to_wanted, row.section_hidden)
    waitlist_line.refuse_where_people_wait(
        conn, ids, row.waiting_sections, row.section_name, bool(row.section_hidden)
    )
    ids["cart"] = cart.locked(conn, ids)
    types = ticket_types.lock(conn, ids, wanted)
    params = {**ids, "spot_limit": limit}
    if spot_ids:
        chosen = conn.execute(_LOCK_CHOSEN, {**params, "ids": sorted(set(spot_ids))}).all()
        if not chosen:  # none of them, or the customer is at the limit
            _keep_limit(conn, ids, wanted, field)
        promo_codes.require_unlocked(chosen, promo)
        free = _all_free(session, chosen, set(spot_ids), now)
        quoted = ticket_types.quote(free, types, ids["ticket_types"], ids["spot_order"])
        ids["quote"] = promo_codes.apply(free, quoted, promo)
        return free
    general = row.section_kind == SectionKind.GENERAL
    params["window"] = best_available_window(wanted, general=general)
    window = conn.execute(_LOCK_BEST, params).all()
    if not window:  # every free spot locked by other buyers, or the customer at the limit
        _keep_limit(conn, ids, wanted, field)
    chosen = best_block(window, wanted)
    if len(chosen) == wanted:
        quoted = ticket_types.quote(chosen, types, ids["ticket_types"], None)
        ids["quote"] = promo_codes.apply(chosen, quoted, promo)
        return chosen
    if window:
        session.rollback()  # the free spots seen go back before anyone looks again
    # Nothing locked but the customer (a sold-out section, which every late buyer asks): counted in
    # the same transaction, read committed as every statement is.
    free = session.connection().execute(_FREE_IN_SECTION, params).scalar_one()
    if free < wanted:
        raise _not_enough(ids, row.section_name, free, row.section_hidden)
    session.rollback()  # the customer's lock is let go while waiting to look again
    return None


def _not_enough(ids: dict[str, Any], section: str, free: int, hidden: bool) -> SpotsUnavailable:
    if free == 0 and not hidden:  # a presale's section is not named to those without its code
        sold_out.remember(ids["event_id"], ids["section_id"], section)
    return not_enough(section, free)


def not_enough(section: str, free: int, *, path: str = "full") -> SpotsUnavailable:
    """The refusal of a best-available hold in a section with fewer free spots than wanted
    (counted as a seat conflict of ``path``)."""
    metrics.SEAT_CONFLICTS.labels(path).inc()
    return SpotsUnavailable(
        gettext(
            "Not enough spots left in %(section)s: %(free)s free right now.",
            section=section,
            free=free,
        ),
        spots=[],
    )


def _place_hold(session: Session, ids: dict[str, Any], spots: list[Row]) -> tuple[int, dt.datetime]:
    conn = session.connection()
    if ids["cart"] is not None:
        return _add_to_cart(session, ids, spots, ids["cart"])
    expires_at = ids["now"] + hold_duration()
    hold_id, held = conn.execute(
        _HOLD_AT_ONCE,
        {
            "b_customer_id": ids["customer_id"],
            "b_event_id": ids["event_id"],
            "now": ids["now"],
            "until": expires_at,
            **quoted_columns(spots, ids["quote"], ids["request_key"]),
        },
    ).one()
    if held != len(spots):  # every one is locked by this transaction
        raise RuntimeError(f"hold {hold_id} took {held} of {len(spots)} locked spots")
    session.commit()
    return hold_id, expires_at


def _add_to_cart(
    session: Session, ids: dict[str, Any], spots: list[Row], cart_row: cart.Cart
) -> tuple[int, dt.datetime]:
    """The spots join the customer's cart (locked by cart.locked) until it expires."""
    if cart_row.order_id is not None:
        cart.void_priced_order(session, session.get(Order, cart_row.order_id))
    held = (
        session.connection()
        .execute(
            _ADD_TO_CART,
            {
                "b_hold_id": cart_row.id,
                "until": cart_row.expires_at,
                **quoted_columns(spots, ids["quote"], ids["request_key"]),
            },
        )
        .scalar_one()
    )
    if held != len(spots):  # every one is locked by this transaction
        raise RuntimeError(f"cart {cart_row.id} took {held} of {len(spots)} locked spots")
    session.commit()
    return cart_row.id, cart_row.expires_at


def _keep_limit(conn: Connection, ids: dict[str, Any], wanted: int, field: str) -> None:
    """HoldLimitExceeded if the customer's held spots and these would pass the limit (counted
    under the customer's lock)."""
    limit = current_app.config["MAX_SPOTS_PER_EVENT"]
    already = conn.execute(_COUNT_HELD, ids).scalar_one()
    if already + wanted > limit:
        raise HoldLimitExceeded(
            gettext(
                "At most %(limit)s spots per customer for this event (you hold %(already)s).",
                limit=limit,
                already=already,
            ),
            field=field,
        )


def _all_free(
    session: Session, spots: list[Row], spot_ids: set[int], now: dt.datetime
) -> list[Row]:
    if len(spots) != len(spot_ids):
        raise NotFound(gettext("Some of these spots do not exist in this event."), field="spot_ids")
    taken = [s for s in spots if not EventSpot.is_free(s.status, s.held_until, now)]
    if taken:
        session.rollback()
        metrics.SEAT_CONFLICTS.labels("full").inc()
        raise SpotsUnavailable(
            gettext(
                "Some of these spots were just taken: %(spots)s.",
                spots=", ".join(s.label for s in taken),
            ),
            spots=[{"id": s.id, "label": s.label} for s in taken],
        )
    return list(spots)


def best_available_window(wanted: int, *, general: bool) -> int:
    """How many free spots best-available locks to choose ``wanted`` among: a choice only
    where adjacent seats are sought (several seats of a seated section: BEST_AVAILABLE_WINDOW,
    or 4 per seat wanted). One seat, or general-admission places, are the first free ones:
    locking more would only make concurrent buyers skip them, and near the end of a flash
    crowd find every free spot locked and look again (bench/onsale.py --burst)."""
    if general or wanted == 1:
        return wanted
    return max(BEST_AVAILABLE_WINDOW, wanted * 4)


def best_block(candidates: Sequence[Any], quantity: int) -> list[Any]:
    """The first run of ``quantity`` adjacent seats in one row, else the first free ones."""
    for _, group in groupby(candidates, key=lambda s: s.row_label):
        row = list(group)
        for start in range(len(row) - quantity + 1):
            run = row[start : start + quantity]
            numbers = [s.seat_number for s in run]
            if None not in numbers and numbers == list(range(numbers[0], numbers[0] + quantity)):
                return run
    return list(candidates[:quantity])
