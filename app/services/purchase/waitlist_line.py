"""The waiting list in force on the purchase path (services/waitlist.py says what the list is):
while anyone waits for a section, or for the whole event, ordinary holds in it are refused, so
the spots that come back go to the line and never to whoever asks fastest. An entry for a capped
ticket type (a *type entry*: half price sold out by its cap) keeps that type only: holds asking
for it are refused, holds of the section's other types are not.

The hold's first statement reads WAITING_SECTIONS with the event (one probe of a partial index
that holds no row of an event without a waiting list, so such events pay nothing more), and
``refuse_where_people_wait`` decides from it before any spot is locked; only chosen spots of
an event that has a list cost one statement more (their sections). The entries in force for a
hold are those committed when its transaction read the event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask_babel import gettext
from sqlalchemy import Connection, case, func, select

from app import metrics
from app.models import (
    Conflict,
    Event,
    EventSection,
    EventSpot,
    TicketType,
    WaitlistEntry,
)
from app.models.base import any_of
from app.services.purchase import sold_out

# An entry for the whole event, as WAITING_SECTIONS lists it (no section has id 0).
ANY_SECTION = 0

_entry, _spot = WaitlistEntry.__table__, EventSpot.__table__
_event, _section, _type = Event.__table__, EventSection.__table__, TicketType.__table__


class WaitlistInForce(Conflict):
    code = "waitlist"


# The sections people wait for at the event of the statement's FROM (ANY_SECTION: the whole
# event) and, negated, the capped ticket types they wait for (a type entry keeps its type, not
# its section); NULL when nobody waits.
WAITING_SECTIONS = (
    select(
        func.array_agg(
            case(
                (_type.c.cap.is_not(None), -_entry.c.ticket_type_id),
                else_=func.coalesce(_entry.c.section_id, ANY_SECTION),
            )
        )
    )
    .select_from(_entry.outerjoin(_type, _type.c.id == _entry.c.ticket_type_id))
    .where(_entry.c.event_id == _event.c.id, WaitlistEntry.waiting_clause())
    .scalar_subquery()
)
_SECTIONS_OF_SPOTS = select(_spot.c.section_id, _section.c.name, _section.c.hidden).join(
    _section, _section.c.id == _spot.c.section_id
)


def refuse_where_people_wait(
    conn: Connection,
    ids: dict[str, Any],
    waiting: Sequence[int] | None,
    section_name: str | None,
    section_hidden: bool = False,
) -> None:
    """WaitlistInForce (409) for an ordinary hold in a section where people wait: best-available
    in ``ids["section_id"]`` (named ``section_name``), or the chosen spots ``ids["spot_order"]``.
    ``waiting``: WAITING_SECTIONS as the hold read it; None (nobody waits) costs nothing. A
    presale (hidden) section is its code's and has no line: an event-wide entry does not keep
    it (``section_hidden``: best-available's section is one). A hold asking for a ticket type
    whose line waits (``ids["ticket_types"]``) is refused whatever its section."""
    if not waiting:
        return
    _refuse_waited_types(conn, ids.get("ticket_types"), {-w for w in waiting if w < 0})
    spot_ids = ids.get("spot_order")
    if not spot_ids:
        section_id = ids["section_id"]
        if (ANY_SECTION in waiting and not section_hidden) or section_id in waiting:
            # Refused from memory for a second, as a sold-out section is (views/holds_fast.py).
            sold_out.remember(ids["event_id"], section_id, section_name or "", waitlist=True)
            raise in_force(section_name or "")
        return
    rows = conn.execute(
        _SECTIONS_OF_SPOTS.where(any_of(_spot.c.id, spot_ids), _spot.c.event_id == ids["event_id"])
    ).all()
    for row in rows:
        if (ANY_SECTION in waiting and not row.hidden) or row.section_id in waiting:
            raise in_force(row.name)


def _refuse_waited_types(conn: Connection, asked: Sequence[int] | None, waited: set[int]) -> None:
    """WaitlistInForce for a hold asking for a type people wait for: its places that come back
    go to them first."""
    if not asked or not waited:
        return
    for type_id in asked:
        if type(type_id) is int and type_id in waited:
            name = conn.execute(select(_type.c.name).where(_type.c.id == type_id)).scalar_one()
            metrics.SEAT_CONFLICTS.labels("full").inc()
            raise WaitlistInForce(
                gettext(
                    "%(type)s is sold out and has a waiting list: the %(type)s tickets that "
                    "come back go to the people in it first. Join the waiting list.",
                    type=name,
                ),
                spots=[],
                ticket_type_id=type_id,
            )


def in_force(section: str, *, path: str = "full") -> WaitlistInForce:
    """The refusal of an ordinary hold in a section whose spots go to its waiting list (counted
    as a seat conflict of ``path``)."""
    metrics.SEAT_CONFLICTS.labels(path).inc()
    return WaitlistInForce(
        gettext(
            "%(section)s is sold out and has a waiting list: spots that come back go to the "
            "people in it first. Join the waiting list.",
            section=section,
        ),
        spots=[],
    )
