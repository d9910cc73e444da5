"""Spots that come back are offered to the waiting lists (services/waitlist.py says how): a
flush listener sees every spot made free and sends the offer task for its event after the
commit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session, SessionTransaction

from app.models import EventSpot, SpotStatus, WaitlistEntry
from app.models.base import any_of
from app.services.after_commit import enqueue

OFFER_TASK = "waitlist.offer"
_entry = WaitlistEntry.__table__


_NOTED = "waitlist_offer_events"


def offer_after_commit(session: Session, event_ids: Iterable[int]) -> None:
    """Run the offers of these events (those with someone waiting) once the transaction
    commits, once per event and transaction."""
    noted: set[int] = session.info.setdefault(_NOTED, set())
    fresh = set(event_ids) - noted
    if not fresh:
        return
    waiting = session.connection().execute(
        select(_entry.c.event_id)
        .where(any_of(_entry.c.event_id, sorted(fresh)), WaitlistEntry.waiting_clause())
        .distinct()
    )
    for (event_id,) in waiting:
        noted.add(event_id)
        enqueue(session, OFFER_TASK, event_id)


@event.listens_for(Session, "after_transaction_end")
def _forget_noted(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_NOTED, None)


def spots_added(session: Session, event_id: int) -> None:
    """New spots of the event (written without the ORM): its lines get them first."""
    offer_after_commit(session, [event_id])


@event.listens_for(Session, "after_flush")
def _note_freed_spots(session: Session, _context: Any) -> None:
    """Spots that became free on any path (a hold released or swept, a refund that resells,
    spots unblocked or added one by one): their events' lines are offered them after the
    commit."""
    freed = {
        spot.event_id
        for spot in (*session.new, *session.dirty)
        if isinstance(spot, EventSpot)
        and spot.status == SpotStatus.AVAILABLE
        and (spot in session.new or _status_changed(spot))
    }
    if freed:
        offer_after_commit(session, freed)


def _status_changed(spot: EventSpot) -> bool:
    return inspect(spot).attrs.status.history.has_changes()
