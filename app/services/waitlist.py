"""The waiting list of a sold-out event (issue #19, point 2; app/models/waitlist.py).

**Joining.** A customer joins per event and, optionally, per section (or ticket type, whose
section it implies) for 1 to MAX_SPOTS_PER_EVENT spots, only while what they ask for is sold out
to ordinary buyers: no free spot in it that is not already kept for a line (409
``spots_on_sale`` otherwise); for a capped ticket type (half price), also while that type is
sold out by its cap, though the section's other types still sell. Joining again answers the
entry they have. Leaving ends their entries of the event (or of one section); an offer
outstanding is released and goes on.

**The line is in force.** While anyone waits for a section (or for the whole event), ordinary
holds in it are refused (purchase/waitlist_line.py, inside the hold's transaction), so spots
that come back go to the line, never to whoever asks fastest. An entry for a capped type (a
*type entry*) waits in that type's line: it keeps the type (holds asking for it are refused),
not the section, whose other types (full price) still sell.

**Offers.** Whenever spots come back (a hold released or swept, a refund, spots unblocked or
added: ``_note_freed_spots`` sees every such flush, ``spots_added`` the partner's generated
spots) and every minute (holds expiring without anyone touching them), ``make_offers`` runs
for the event: serialised per event by its row's lock, it takes each section's line in order
(joined first, first served; an event-wide entry stands in every section's line) and, when the
section's free spots cover the first in line's quantity, places an ordinary hold for them on
those spots (SKIP LOCKED, at their ticket type's price if they named one), lasting the event's
``waitlist_offer_minutes``, marks the entry offered and writes the e-mail, in one transaction.
The order is strict within a line: when the first in line wants more spots than are free (a type
line's first: or more than its type's cap leaves), nobody behind them jumps ahead. The lines of
a section (the section's and each capped type's) do not block one another: the first of each
line that the free spots (and its type's room) can serve is served, the earliest joined first.
Paid, the hold converts the entry; expired or released it expires it (the database's trigger)
and its spots come back for the next.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import gettext
from sqlalchemy import (
    Connection,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session

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
    NotFound,
    SectionKind,
    TicketType,
    WaitlistEntry,
    WaitlistStatus,
)
from app.models.base import MAX_INT, utcnow
from app.services.locking import busy_on_lock_failure
from app.services.mail import outbox
from app.services.mail.waitlist_mails import WAITLIST_OFFER as OFFER_MAIL
from app.services.purchase import hold as holds
from app.services.purchase import promo_codes, release, ticket_types
from app.services.purchase.waitlist_line import (  # noqa: F401 - WaitlistInForce re-exported
    ANY_SECTION,
    WaitlistInForce,
    in_force,
)
from app.services.waitlist_offered import (  # noqa: F401 - the listeners, and re-exported
    OFFER_TASK,
    offer_after_commit,
    spots_added,
)

log = logging.getLogger(__name__)

# How often an offer run looks again when the free spots a line needs are locked by someone
# else (a sweep releasing them, a refund): they are about to be free or taken.
OFFER_ATTEMPTS = 10

_entry, _spot, _hold = WaitlistEntry.__table__, EventSpot.__table__, Hold.__table__
_event, _section = Event.__table__, EventSection.__table__


class SpotsOnSale(Conflict):
    code = "spots_on_sale"


# -- joining and leaving ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """A customer's entry as they see it: where they stand and what they were offered."""

    entry: WaitlistEntry
    position: int | None  # 1 = next; None once offered or ended
    created: bool = False


def _event_for_sale(session: Session, event_id: int, now: dt.datetime) -> Event:
    event_ = session.get(Event, event_id)
    if event_ is None or event_.status == EventStatus.DRAFT:
        raise NotFound(gettext("Event not found."))
    event_.sale_window.require_open(now)
    return event_


def _scope(
    session: Session, event_: Event, section_id: int | None, ticket_type_id: int | None
) -> tuple[int | None, int | None]:
    """The section (and type) asked for, checked against the event: (section_id, type_id)."""
    if ticket_type_id is not None:
        kind = session.get(TicketType, ticket_type_id)
        if (
            kind is None
            or not kind.public
            or kind.hidden
            or kind.section.hidden
            or kind.section.event_id != event_.id
        ):
            raise NotFound(gettext("Ticket type not found in this event."), field="ticket_type_id")
        if section_id is not None and section_id != kind.section_id:
            raise DomainError(gettext("A ticket type of another section."), field="ticket_type_id")
        section_id = kind.section_id
    if section_id is not None:
        section = session.get(EventSection, section_id)
        # A presale (hidden) section is sold with its code only: it has no waiting list.
        if section is None or section.event_id != event_.id or section.hidden:
            raise NotFound(gettext("Section not found in this event."), field="section_id")
    return section_id, ticket_type_id


def _open_entries(customer_id: int, event_id: int) -> Any:
    return select(WaitlistEntry).where(
        WaitlistEntry.customer_id == customer_id,
        WaitlistEntry.event_id == event_id,
        WaitlistEntry.open_clause(),
    )


def _people_wait_for(event_id: int, section: Any) -> Any:
    """Whether anyone waits for ``section`` (a column or value) of the event, or for all of it
    (type entries keep their type, not the section)."""
    return exists().where(
        _entry.c.event_id == event_id,
        WaitlistEntry.waiting_clause(),
        or_(_entry.c.section_id.is_(None), _entry.c.section_id == section),
        WaitlistEntry.in_section_line(),
    )


def _sold_out_by_cap(session: Session, ticket_type_id: int | None, now: dt.datetime) -> bool:
    """Whether the type is capped and its cap reached: no more of it may be held now."""
    if ticket_type_id is None:
        return False
    kind = session.get(TicketType, ticket_type_id)
    if kind is None or kind.cap is None:
        return False
    return ticket_types.taken_of(session.connection(), kind.id, now) >= kind.cap


def _public_sections(event_id: Any) -> Any:
    """The event's sections on sale to everyone: a presale (hidden) section is its code's, never
    a waiting list's."""
    return select(_section.c.id).where(
        _section.c.event_id == event_id, _section.c.hidden.is_(False)
    )


def _on_sale_spot(event_id: int, section_id: int | None, now: dt.datetime) -> Any:
    """A free spot of the event (of the section) that ordinary buyers may take: in no line, not
    in a presale section."""
    query = (
        select(_spot.c.id)
        .where(
            _spot.c.event_id == event_id,
            _spot.c.section_id.in_(_public_sections(event_id)),
            EventSpot.open_clause(),
            EventSpot.free_clause(now),
            ~_people_wait_for(event_id, _spot.c.section_id),
        )
        .limit(1)
    )
    return query.where(_spot.c.section_id == section_id) if section_id is not None else query


def join(
    session: Session,
    customer_id: int,
    event_id: int,
    *,
    section_id: int | None = None,
    ticket_type_id: int | None = None,
    quantity: int = 1,
    now: dt.datetime | None = None,
) -> Place:
    """Put the customer in the event's (section's) waiting list for ``quantity`` spots, or
    answer the entry they have there. Only while it is sold out to ordinary buyers."""
    now = now or utcnow()
    limit = current_app.config["MAX_SPOTS_PER_EVENT"]
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 < quantity <= limit:
        raise DomainError(gettext("Ask for 1 to %(limit)s spots.", limit=limit), field="quantity")
    with busy_on_lock_failure(session):
        event_ = _event_for_sale(session, event_id, now)
        section_id, ticket_type_id = _scope(session, event_, section_id, ticket_type_id)
        # One customer's joins one at a time: the entry they have is found, never doubled.
        session.execute(
            select(Customer.id).where(Customer.id == customer_id).with_for_update(key_share=True)
        )
        same_section = (
            WaitlistEntry.section_id.is_(None)
            if section_id is None
            else WaitlistEntry.section_id == section_id
        )
        existing = session.scalars(_open_entries(customer_id, event_id).where(same_section)).first()
        if existing is not None:
            session.commit()
            return Place(existing, position_of(session, existing))
        if (
            not _sold_out_by_cap(session, ticket_type_id, now)
            and session.execute(_on_sale_spot(event_id, section_id, now)).first() is not None
        ):
            raise SpotsOnSale(
                gettext("Spots are on sale: buy them."),
                field="section_id" if section_id is not None else None,
            )
        entry = WaitlistEntry(
            event_id=event_id,
            customer_id=customer_id,
            section_id=section_id,
            ticket_type_id=ticket_type_id,
            quantity=quantity,
            status=WaitlistStatus.WAITING.value,
            created_at=now,
        )
        session.add(entry)
        session.commit()
    log.info("joined waiting list", extra={"event_id": event_id, "entry_id": entry.id})
    return Place(entry, position_of(session, entry), created=True)


def leave(
    session: Session, customer_id: int, event_id: int, *, section_id: int | None = None
) -> list[WaitlistEntry]:
    """End the customer's entries of the event (only the one for ``section_id`` if given); an
    outstanding offer's hold is released, and its spots go to the next in line. NotFound when
    they have none."""
    entries = session.scalars(_open_entries(customer_id, event_id)).all()
    if section_id is not None:
        entries = [e for e in entries if e.section_id == section_id]
    if not entries:
        raise NotFound(gettext("You are not in this event's waiting list."))
    wanted = [(e.id, e.hold_id) for e in entries]
    session.rollback()
    ended = []
    for entry_id, hold_id in wanted:
        with busy_on_lock_failure(session):
            # The offered hold first: a hold's end locks its entry (the trigger), not the reverse.
            hold = session.get(Hold, hold_id, with_for_update=True) if hold_id else None
            entry = session.get(WaitlistEntry, entry_id, with_for_update=True)
            if entry is not None and entry.hold_id != hold_id:
                # Offered since it was read: its hold is locked first, then the entry again.
                session.rollback()
                hold = session.get(Hold, entry.hold_id, with_for_update=True)
                entry = session.get(WaitlistEntry, entry_id, with_for_update=True)
            if entry is None or not entry.is_open:
                session.rollback()
                continue
            entry.status = WaitlistStatus.LEFT.value
            entry.ended_at = utcnow()
            ended.append(entry)
            if hold is not None and Hold.RELEASE.allows(hold.status):
                release.release_hold(session, customer_id, hold.id)  # commits
            else:
                session.commit()
    return ended


def position_of(session: Session, entry: WaitlistEntry) -> int | None:
    """Where a waiting entry stands in its line (WaitlistEntry.position)."""
    return entry.position


def waiting_sections(session: Session, event_id: int) -> set[int]:
    """The sections of the event kept for their waiting lists (ANY_SECTION: all of them); type
    entries keep their type, not the section."""
    return {
        section_id or ANY_SECTION
        for section_id in session.scalars(
            select(WaitlistEntry.section_id)
            .where(
                WaitlistEntry.event_id == event_id,
                WaitlistEntry.waiting_clause(),
                WaitlistEntry.in_section_line(),
            )
            .distinct()
        )
    }


def sold_out_types(session: Session, event_id: int, now: dt.datetime | None = None) -> set[int]:
    """The event's capped ticket types ordinary buyers cannot have now: their cap reached, or
    kept for the people waiting for them (the shop offers their waiting list)."""
    now = now or utcnow()
    capped = session.scalars(
        select(TicketType)
        .join(EventSection, EventSection.id == TicketType.section_id)
        .where(EventSection.event_id == event_id, TicketType.cap.is_not(None))
    ).all()
    if not capped:
        return set()
    waited = set(
        session.scalars(
            select(WaitlistEntry.ticket_type_id).where(
                WaitlistEntry.event_id == event_id,
                WaitlistEntry.waiting_clause(),
                WaitlistEntry.ticket_type_id.in_([kind.id for kind in capped]),
            )
        )
    )
    conn = session.connection()
    return {
        kind.id
        for kind in capped
        if kind.id in waited or ticket_types.taken_of(conn, kind.id, now) >= (kind.cap or 0)
    }


def places_of(session: Session, customer_id: int, event_id: int | None = None) -> list[Place]:
    """The customer's entries (of one event), newest first, with their positions."""
    query = select(WaitlistEntry).where(WaitlistEntry.customer_id == customer_id)
    if event_id is not None:
        query = query.where(WaitlistEntry.event_id == event_id)
    entries = session.scalars(query.order_by(WaitlistEntry.id.desc()).limit(100)).all()
    return [Place(e, position_of(session, e)) for e in entries]


# -- offers ----------------------------------------------------------------------------------------


_FREE_BY_SECTION = (
    select(_spot.c.section_id, func.count().label("free"))
    .where(
        EventSpot.open_clause(),
    )
    .group_by(_spot.c.section_id)
)


def _first_in_line(
    session: Session, event_id: int, section_id: int, type_id: int | None = None
) -> WaitlistEntry | None:
    """The first waiting entry of the section's line (the section's and the event-wide ones),
    or of the capped type ``type_id``'s line, locked (an offer run holds the event's lock too:
    no other run reads it meanwhile)."""
    line = (
        or_(WaitlistEntry.section_id.is_(None), WaitlistEntry.section_id == section_id)
        & WaitlistEntry.in_section_line()
        if type_id is None
        else (WaitlistEntry.section_id == section_id) & (WaitlistEntry.ticket_type_id == type_id)
    )
    return session.scalars(
        select(WaitlistEntry)
        .where(WaitlistEntry.event_id == event_id, WaitlistEntry.waiting_clause(), line)
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        .limit(1)
        .with_for_update()
    ).first()


def _type_lines(session: Session, event_id: int) -> dict[int, list[int]]:
    """The capped types people wait for at the event, per section."""
    lines: dict[int, list[int]] = {}
    for section_id, type_id in session.execute(
        select(WaitlistEntry.section_id, WaitlistEntry.ticket_type_id)
        .where(
            WaitlistEntry.event_id == event_id,
            WaitlistEntry.waiting_clause(),
            WaitlistEntry.in_type_line(),
        )
        .distinct()
        .order_by(WaitlistEntry.ticket_type_id)
    ):
        lines.setdefault(section_id, []).append(type_id)
    return lines


def make_offers(session: Session, event_id: int, now: dt.datetime | None = None) -> int:
    """Offer the spots free at the event to its waiting lists, in order; returns how many
    offers were made. Each offer is one transaction."""
    made = 0
    for attempt in range(OFFER_ATTEMPTS):
        while True:
            outcome = _offer_once(session, event_id, now or utcnow())
            if outcome is not _OFFERED:
                break
            made += 1
        if outcome is not _CONTENDED:
            return made
        # Spots a line needs are locked by a release or a buyer right now: look again soon.
        time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311 - jitter
    return made


_OFFERED, _CONTENDED, _NOTHING = "offered", "contended", "nothing"


def _offer_once(session: Session, event_id: int, now: dt.datetime) -> str:
    """One offer, if any line's first can be served now: _OFFERED; _CONTENDED when one could
    but its spots were locked by others; _NOTHING otherwise."""
    session.rollback()
    try:
        with busy_on_lock_failure(session):
            return _offer_in_transaction(session, event_id, now)
    except Busy:
        return _CONTENDED


def _offer_in_transaction(session: Session, event_id: int, now: dt.datetime) -> str:
    conn = session.connection()
    # One offer run at a time per event: the lines and the free spots are read under it.
    event_ = session.get(Event, event_id, with_for_update={"key_share": True})
    if event_ is None or not event_.sale_window.is_open(now):
        session.rollback()
        return _NOTHING
    free = conn.execute(
        _FREE_BY_SECTION.where(
            _spot.c.event_id == event_id,
            _spot.c.section_id.in_(_public_sections(event_id)),
            EventSpot.free_clause(now),
        )
    ).all()
    contended = False
    type_lines = _type_lines(session, event_id)
    for section_id, count in sorted(free, key=lambda r: r.section_id):
        # The first of the section's line and of each of its types' lines; one who wants more
        # than is free waits (nobody behind them jumps ahead) without keeping the free spots
        # from the other lines' firsts, who are served the earliest joined first.
        firsts = [
            _first_in_line(session, event_id, section_id, type_id)
            for type_id in [None, *type_lines.get(section_id, [])]
        ]
        servable = sorted(
            (f for f in firsts if f is not None and f.quantity <= count),
            key=lambda entry: (entry.created_at, entry.id),
        )
        for first in servable:
            # Each try in a savepoint: one that fails lets go of the customer, the type and the
            # spots it locked before the next first in line is tried.
            attempt = session.begin_nested()
            outcome = _offer(session, conn, first, section_id, now, event_.waitlist_offer_minutes)
            if outcome is _OFFERED:
                return _OFFERED  # committed
            attempt.rollback()
            contended = contended or outcome is _CONTENDED
    session.rollback()
    return _CONTENDED if contended else _NOTHING


def _offer(
    session: Session,
    conn: Connection,
    entry: WaitlistEntry,
    section_id: int,
    now: dt.datetime,
    minutes: int,
) -> str:
    """Hold ``entry.quantity`` free spots of the section for the entry's customer, mark it
    offered and write its mail, and commit: _OFFERED; else (nothing changed) why not."""
    wanted = entry.quantity
    ids: dict[str, Any] = {
        "customer_id": entry.customer_id,
        "event_id": entry.event_id,
        "section_id": section_id,
        "now": now,
        "wanted": wanted,
        "ticket_types": [entry.ticket_type_id] * wanted if entry.ticket_type_id else None,
        "spot_order": None,
    }
    # The hold's lock order: the customer, the capped type, then the spots (SKIP LOCKED).
    session.execute(
        select(Customer.id).where(Customer.id == entry.customer_id).with_for_update(key_share=True)
    )
    try:
        types = ticket_types.lock(conn, ids, wanted)
    except ticket_types.TicketTypeSoldOut:
        return _NOTHING  # its cap is reached: the entry waits for one of its type to come back
    except NotFound:  # the type was withdrawn: the section's price
        ids["ticket_types"], types = None, {}
    window = conn.execute(
        holds._LOCK_BEST,
        {
            **ids,
            "window": holds.best_available_window(
                wanted, general=session.get(EventSection, section_id).kind == SectionKind.GENERAL
            ),
            "spot_limit": MAX_INT,
        },
    ).all()
    chosen = holds.best_block(window, wanted)
    if len(chosen) < wanted:
        return _CONTENDED
    quote = ticket_types.quote(chosen, types, ids["ticket_types"], None)
    until = now + dt.timedelta(minutes=minutes)
    hold_id, held = conn.execute(
        holds._HOLD_AT_ONCE,
        {
            "b_customer_id": entry.customer_id,
            "b_event_id": entry.event_id,
            "now": now,
            "until": until,
            **holds.quoted_columns(chosen, promo_codes.apply(chosen, quote, None)),
        },
    ).one()
    if held != wanted:  # every one is locked by this transaction
        raise RuntimeError(f"offer hold {hold_id} took {held} of {wanted} locked spots")
    entry.status = WaitlistStatus.OFFERED.value
    entry.offered_at = now
    entry.offer_expires_at = until
    entry.hold_id = hold_id
    session.flush()
    outbox.queue_to_customer(
        session,
        OFFER_MAIL,
        entry.customer_id,
        key=f"{OFFER_MAIL}:{entry.id}:{hold_id}",
        params={"entry_id": entry.id, "hold_id": hold_id},
    )
    session.commit()
    log.info(
        "waiting list offer",
        extra={"event_id": entry.event_id, "entry_id": entry.id, "hold_id": hold_id},
    )
    return _OFFERED


def events_with_waiting(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Events on sale whose lists have someone waiting (the beat's sweep offers for each); an
    event no longer on sale (ended, cancelled, its sales closed) is left out."""
    return list(
        session.scalars(
            select(WaitlistEntry.event_id)
            .join(Event, Event.id == WaitlistEntry.event_id)
            .where(WaitlistEntry.waiting_clause(), Event.on_sale_clause(now or utcnow()))
            .distinct()
            .order_by(WaitlistEntry.event_id)
        )
    )


def sweep(session: Session, now: dt.datetime | None = None) -> int:
    """Every minute: offers for every event whose lists wait (spots of holds that expired
    without a release come back this way). Returns how many offers were made."""
    made = 0
    for event_id in events_with_waiting(session, now):
        made += make_offers(session, event_id, now)
    return made
