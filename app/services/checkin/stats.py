"""The partner dashboard's live gate figures for an event: admitted tickets by section and by
gate, rejected scans by result, offline conflicts. Read from the database (the entries and the
scan log), so scans judged from Redis count once the scan log is flushed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import CheckIn, CheckinEntry, Event, EventSection, Ticket, TicketStatus
from app.services.scoping import Actor, get_owned


def entries_by_section_and_gate(session: Session, actor: Actor, event_id: int) -> dict[str, Any]:
    """Live figures for the partner's dashboard: admitted tickets by section and by gate,
    rejected scans by result, offline conflicts."""
    event = get_owned(session, Event, event_id, actor)
    by_section = session.execute(
        select(EventSection.name, func.count(CheckinEntry.ticket_id))
        .join(Ticket, Ticket.section_id == EventSection.id)
        .join(CheckinEntry, CheckinEntry.ticket_id == Ticket.id)
        .where(CheckinEntry.event_id == event.id)
        .group_by(EventSection.name)
        .order_by(EventSection.name)
    ).all()
    sold_by_section = dict(
        session.execute(
            select(EventSection.name, func.count(Ticket.id))
            .join(Ticket, Ticket.section_id == EventSection.id)
            .where(Ticket.event_id == event.id, Ticket.status == TicketStatus.VALID)
            .group_by(EventSection.name)
        ).all()
    )
    by_gate = session.execute(
        select(CheckinEntry.first_gate, func.count())
        .where(CheckinEntry.event_id == event.id)
        .group_by(CheckinEntry.first_gate)
        .order_by(CheckinEntry.first_gate)
    ).all()
    by_result = session.execute(
        select(CheckIn.result, func.count())
        .where(CheckIn.event_id == event.id)
        .group_by(CheckIn.result)
        .order_by(CheckIn.result)
    ).all()
    conflicts = session.scalar(
        select(func.count()).where(CheckIn.event_id == event.id, CheckIn.conflict.is_(True))
    )
    return {
        "event": event,
        "sections": [
            {"name": name, "entered": entered, "tickets": sold_by_section.get(name, 0)}
            for name, entered in by_section
        ]
        + [
            {"name": name, "entered": 0, "tickets": sold}
            for name, sold in sorted(sold_by_section.items())
            if name not in {n for n, _ in by_section}
        ],
        "gates": [{"gate": gate, "entered": n} for gate, n in by_gate],
        "results": [{"result": result, "scans": n} for result, n in by_result],
        "conflicts": conflicts or 0,
        "entered": sum(n for _, n in by_gate),
    }
