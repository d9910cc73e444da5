"""Ticket types in a hold: which type (and so which price) each held spot gets, and the types'
caps kept under concurrent buyers (app/models/ticket_type.py says what they are).

A capped type's row is locked (in id order, after the customer's and before the spots') while
its places are counted: the places held by live holds and the valid tickets of that type. Two
buyers of the last half-price tickets are counted one after the other, so the cap is never
passed; buyers of uncapped types (the full price) lock nothing more.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext
from sqlalchemy import Connection, Row, bindparam, func, select

from app.models import (
    Conflict,
    DomainError,
    EventSection,
    EventSpot,
    NotFound,
    SpotStatus,
    Ticket,
    TicketStatus,
    TicketType,
)

_type, _section = TicketType.__table__, EventSection.__table__
_spot, _ticket = EventSpot.__table__, Ticket.__table__

_TYPES_OF_EVENT = (
    select(
        _type.c.id,
        _type.c.section_id,
        _type.c.name,
        _type.c.price_cents,
        _type.c.cap,
        _type.c.hidden,
    )
    .join(_section, _section.c.id == _type.c.section_id)
    .where(
        _type.c.id.in_(bindparam("type_ids", expanding=True)),
        _section.c.event_id == bindparam("event_id"),
        _type.c.public.is_(True),
    )
)
_LOCK_CAPPED = (
    select(_type.c.id)
    .where(_type.c.id.in_(bindparam("type_ids", expanding=True)))
    .order_by(_type.c.id)
    .with_for_update()
)
# Places a type has taken: held by a live hold, or valid tickets (a pending ticket's spot is
# still held, so it is counted once).
_HELD_OF_TYPE = (
    select(func.count())
    .where(
        _spot.c.held_ticket_type_id == bindparam("type_id"),
        _spot.c.status == SpotStatus.HELD.value,
        _spot.c.held_until > bindparam("now"),
    )
    .scalar_subquery()
)
_SOLD_OF_TYPE = (
    select(func.count())
    .where(
        _ticket.c.ticket_type_id == bindparam("type_id"),
        _ticket.c.status == TicketStatus.VALID.value,
    )
    .scalar_subquery()
)
_TAKEN = select(_HELD_OF_TYPE + _SOLD_OF_TYPE)


def taken_of(conn: Connection, type_id: int, now: Any) -> int:
    """Places the type has taken: held by live holds, or valid tickets (lock its row first)."""
    return conn.execute(_TAKEN, {"type_id": type_id, "now": now}).scalar_one()


class TicketTypeSoldOut(Conflict):
    code = "ticket_type_sold_out"


@dataclass(frozen=True)
class Kind:
    """A ticket type as a hold quotes it."""

    id: int
    section_id: int
    name: str
    price_cents: int


def lock(conn: Connection, ids: dict[str, Any], wanted: int) -> dict[int, Kind]:
    """The types ``ids["ticket_types"]`` asks for (one per ticket), checked against the event,
    the capped ones locked and their caps kept for this hold ({} when none is asked). A hidden
    (presale) type exists only for the promo code that unlocks it (``ids["unlocked_type"]``)."""
    asked: list[int] | None = ids.get("ticket_types")
    if not asked:
        return {}
    order = ids.get("spot_order")
    if (
        len(asked) != wanted
        or (order is not None and len(order) != len(asked))
        or not all(type(t) is int for t in asked)
    ):
        raise DomainError(
            gettext("Give one ticket type (an id) per ticket, in the order of the spots."),
            field="ticket_types",
        )
    rows = conn.execute(
        _TYPES_OF_EVENT, {"type_ids": sorted(set(asked)), "event_id": ids["event_id"]}
    ).all()
    unlocked = ids.get("unlocked_type")
    found = {row.id: row for row in rows if not row.hidden or row.id == unlocked}
    if len(found) != len(set(asked)):
        raise NotFound(gettext("Ticket type not found in this event."), field="ticket_types")
    section_id = ids.get("section_id")
    if section_id is not None and any(row.section_id != section_id for row in rows):
        raise DomainError(gettext("A ticket type of another section."), field="ticket_types")
    capped = sorted(row.id for row in rows if row.cap is not None)
    if capped:
        conn.execute(_LOCK_CAPPED, {"type_ids": capped}).all()
        counts = Counter(asked)
        for type_id in capped:
            row = found[type_id]
            taken = taken_of(conn, type_id, ids["now"])
            left = max(row.cap - taken, 0)
            if counts[type_id] > left:
                raise TicketTypeSoldOut(
                    gettext(
                        "Only %(left)s %(type)s ticket(s) left in this section.",
                        left=left,
                        type=row.name,
                    ),
                    field="ticket_types",
                    ticket_type_id=type_id,
                    left=left,
                )
    return {row.id: Kind(row.id, row.section_id, row.name, row.price_cents) for row in rows}


def quote(
    spots: Sequence[Row],
    types: dict[int, Kind],
    asked: Sequence[int] | None,
    order: Sequence[int] | None,
) -> list[tuple[Kind | None, int]]:
    """Each spot's (type, price), in the order of ``spots``: the types ``asked`` for, one per
    spot id of ``order`` (the buyer's), or in the order best-available chose the spots (``order``
    None); without types, the section's price."""
    if not types or not asked:
        return [(None, spot.price_cents) for spot in spots]
    if order is None:
        per_spot = list(asked)
    else:
        by_spot = dict(zip(order, asked, strict=True))
        per_spot = [by_spot[spot.id] for spot in spots]
    quoted: list[tuple[Kind | None, int]] = []
    for spot, type_id in zip(spots, per_spot, strict=True):
        kind = types[type_id]
        if kind.section_id != spot.section_id:
            raise DomainError(
                gettext(
                    "%(type)s is a ticket type of another section than %(spot)s's.",
                    type=kind.name,
                    spot=spot.label,
                ),
                field="ticket_types",
            )
        quoted.append((kind, kind.price_cents))
    return quoted
