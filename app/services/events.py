"""Partner-side event use cases: publish, unpublish, cancel, generate and block spots."""

from __future__ import annotations

import string
from collections.abc import Iterable

from flask_babel import gettext
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app.models import (
    Conflict,
    DomainError,
    Event,
    EventSection,
    EventSpot,
    Forbidden,
    NotFound,
    Partner,
    SectionKind,
    SpotStatus,
)
from app.services import audit, waitlist
from app.services.after_commit import enqueue
from app.services.mail import notice_mails
from app.services.scoping import Actor, get_owned, get_owned_many, is_platform_staff

ROW_LETTERS = string.ascii_uppercase
MAX_SPOTS_PER_GENERATION = 50_000


def claim_new_event(
    session: Session, event: Event, actor: Actor | None, default_currency: str
) -> None:
    """Rules for a new event: partner users create events for their own partner only; platform
    staff name the partner."""
    if is_platform_staff(actor):
        if event.partner is None and event.partner_id is None:
            raise DomainError(gettext("Choose the partner organising the event."), field="partner")
    else:
        partner_id = getattr(actor, "partner_id", None)
        if partner_id is None:
            raise Forbidden(gettext("Your user belongs to no partner."))
        if event.partner is not None and event.partner.id != partner_id:
            raise NotFound(gettext("Partner not found."), field="partner")
        event.partner = session.get(Partner, partner_id)
    event.currency = (event.currency or default_currency).upper()
    event.check_times()


def publish_event(session: Session, event_id: int, actor: Actor | None) -> Event:
    event = get_owned(session, Event, event_id, actor)
    event.publish()
    session.commit()
    return event


def unpublish_event(session: Session, event_id: int, actor: Actor | None) -> Event:
    event = get_owned(session, Event, event_id, actor)
    event.unpublish()
    session.commit()
    return event


def cancel_event(session: Session, event_id: int, actor: Actor | None, reason: str) -> Event:
    """Cancel the event (sales stop at once) and, after the commit, start refunding its paid
    orders in the background."""
    event = get_owned(session, Event, event_id, actor)
    event.cancel(reason)
    session.flush()
    notice_mails.queue_event_cancelled(session, event.id)  # its customers hear of it
    enqueue(session, "refunds.cancelled_event", event.id)
    session.commit()
    return event


def seat_block_labels(
    first_row: str, last_row: str, seats_per_row: int, prefix: str = ""
) -> list[tuple[str, int, str]]:
    """(row label, seat number, spot label) for rows first..last (letters A..Z) x seats 1..N."""
    first_row, last_row = first_row.strip().upper(), last_row.strip().upper()
    for field, value in (("first_row", first_row), ("last_row", last_row)):
        if len(value) != 1 or value not in ROW_LETTERS:
            raise DomainError(gettext("Rows are single letters from A to Z."), field=field)
    if ROW_LETTERS.index(last_row) < ROW_LETTERS.index(first_row):
        raise DomainError(
            gettext("The last row must not come before the first row."), field="last_row"
        )
    if seats_per_row < 1:
        raise DomainError(gettext("Give at least one seat per row."), field="seats_per_row")
    rows = ROW_LETTERS[ROW_LETTERS.index(first_row) : ROW_LETTERS.index(last_row) + 1]
    prefix = prefix.strip()
    return [
        (f"{prefix}{row}", seat, f"{prefix}{row}-{seat}")
        for row in rows
        for seat in range(1, seats_per_row + 1)
    ]


def generate_spots(
    session: Session,
    section_id: int,
    actor: Actor | None,
    *,
    first_row: str | None = None,
    last_row: str | None = None,
    seats_per_row: int | None = None,
    quantity: int | None = None,
    prefix: str = "",
) -> int:
    """Create a block of seats (seated sections) or N more places (general admission).

    Refuses the whole block if any label already exists in the section. Returns how many
    spots were created.
    """
    section = get_owned(session, EventSection, section_id, actor)
    if section.event.is_cancelled:
        raise Conflict(gettext("The event is cancelled: no spots can be added."))
    next_position = last_spot_position(session, section.id)
    if section.kind == SectionKind.GENERAL:
        if not quantity or quantity < 1:
            raise DomainError(
                gettext("Give how many general-admission places to add."), field="quantity"
            )
        label_prefix = prefix.strip() or "GA-"
        rows = [(None, None, f"{label_prefix}{next_position + i}") for i in range(1, quantity + 1)]
    else:
        if not (first_row and last_row and seats_per_row):
            raise DomainError(
                gettext("Give the first and last row and the seats per row."), field="first_row"
            )
        rows = seat_block_labels(first_row, last_row, seats_per_row, prefix)
    if len(rows) > MAX_SPOTS_PER_GENERATION:
        raise DomainError(
            gettext(
                "At most %(max_spots_per_generation)s spots per generation.",
                max_spots_per_generation=MAX_SPOTS_PER_GENERATION,
            ),
            field="seats_per_row",
        )
    _refuse_existing_labels(session, section, (label for _, _, label in rows))
    session.execute(
        insert(EventSpot),
        [
            {
                "section_id": section.id,
                "event_id": section.event_id,
                "label": label,
                "row_label": row,
                "seat_number": seat,
                "position": next_position + i,
                "status": SpotStatus.AVAILABLE.value,
            }
            for i, (row, seat, label) in enumerate(rows, start=1)
        ],
    )
    audit.record_generated_spots(session, section, [label for _, _, label in rows])
    waitlist.spots_added(session, section.event_id)  # its waiting lists get them first
    session.commit()
    return len(rows)


def last_spot_position(session: Session, section_id: int) -> int:
    return (
        session.scalar(
            select(func.coalesce(func.max(EventSpot.position), 0)).where(
                EventSpot.section_id == section_id
            )
        )
        or 0
    )


def _refuse_existing_labels(session: Session, section: EventSection, labels: Iterable[str]) -> None:
    wanted = list(labels)
    existing: list[str] = []
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        existing += session.scalars(
            select(EventSpot.label).where(
                EventSpot.section_id == section.id, EventSpot.label.in_(chunk)
            )
        ).all()
    if existing:
        shown = ", ".join(sorted(existing)[:10]) + ("..." if len(existing) > 10 else "")
        raise Conflict(
            gettext(
                "%(count)s of these labels already exist in %(name)s: %(shown)s. "
                "Nothing was generated.",
                count=len(existing),
                name=section.name,
                shown=shown,
            )
        )


def set_spots_blocked(
    session: Session, spot_ids: Iterable[int], actor: Actor | None, *, blocked: bool
) -> int:
    """Block or unblock spots (all or none). Returns how many changed."""
    spots = get_owned_many(session, EventSpot, spot_ids, actor, lock=True)
    for spot in spots:
        spot.block() if blocked else spot.unblock()
    session.commit()
    return len(spots)
