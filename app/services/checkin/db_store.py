"""The database store: a scan judged and logged from PostgreSQL alone (the embedded default, and
the fallback while Redis is unreachable).

A ticket's entry is its row of ``checkin_entry``; ``rules.decide_entry`` decides each scan on
that row, locked. The table's unique ticket key takes a first entry, so of two gates scanning a
ticket at once one wins. The scan is logged in the same transaction, and a retry with the same
nonce gets the first answer back from the log.

As Redis's fallback (``redis_pending``), every entry it changes is marked for Redis in the same
transaction (``checkin_entry.redis_pending_at``), and ``catch_up`` tells Redis once it answers
again. It sees every entry Redis took before it failed: Redis's scans are written to the
database before they are answered (``scan_log.write_through``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import (
    CheckIn,
    CheckinEntry,
    Event,
    EventSection,
    EventSpot,
    EventStatus,
    ScanResult,
    Ticket,
    TicketKind,
    TicketStatus,
    TicketType,
)
from app.models.base import utcnow
from app.models.order import seat_label
from app.services.checkin.rules import (
    EventInfo,
    FirstAnswer,
    Outcome,
    ScanRequest,
    decide_entry,
    iso,
)
from app.services.checkin.scanners import Scanner


class DbStore:
    def __init__(self, session: Session, *, redis_pending: bool = False) -> None:
        """``redis_pending``: judging in Redis's stead; the entries changed are marked for it."""
        self.session = session
        self.redis_pending = redis_pending

    def recall(self, nonce: str) -> FirstAnswer | None:
        row = self.session.scalar(select(CheckIn).where(CheckIn.nonce == nonce))
        if row is None:
            return None
        return FirstAnswer(row.request_fingerprint, logged_answer(self.session, row))

    def event_info(self, event_id: int) -> EventInfo | None:
        return event_info_from_db(self.session, event_id)

    def is_revoked(self, event_id: int, ticket_id: int) -> bool:
        # FOR SHARE: a transfer revoking the ticket right now is waited for, and one that comes
        # after waits for this scan and then sees its entry (services/tickets.py), so a code
        # is never admitted while the ticket is handed on.
        status = self.session.scalar(
            select(Ticket.status)
            .where(Ticket.id == ticket_id, Ticket.event_id == event_id)
            .with_for_update(read=True)
        )
        return status != TicketStatus.VALID

    def ticket_details(self, event_id: int, ticket_id: int) -> dict[str, Any]:
        return ticket_details(self.session, ticket_id)

    def enter(
        self, info: EventInfo, ticket_id: int, request: ScanRequest, nonce: str
    ) -> tuple[str, str | None, str | None]:
        return enter_in_db(self.session, info, ticket_id, request, redis_pending=self.redis_pending)

    def record(
        self,
        scanner: Scanner,
        request: ScanRequest,
        fingerprint: str,
        outcome: Outcome,
        answer: dict[str, Any],
    ) -> FirstAnswer:
        if outcome.log_event_id is not None:
            self.session.add(_log_row(scanner, request, fingerprint, outcome, answer, utcnow()))
        mine = FirstAnswer(fingerprint, answer, mine=True)
        try:
            self.session.commit()
        except IntegrityError:
            # The same nonce raced us: the first one's answer is the nonce's.
            self.session.rollback()
            return self.recall(scanner.scoped(request.nonce)) or mine
        return mine


def event_info_from_db(session: Session, event_id: int) -> EventInfo | None:
    event = session.get(Event, event_id)
    if event is None or event.status == EventStatus.DRAFT:
        return None
    return event_info_of(event)


def event_info_of(event: Event) -> EventInfo:
    opens, closes = event.checkin_window()
    return EventInfo(
        event_id=event.id,
        partner_id=event.partner_id,
        public_key=event.public_key,
        opens_at=opens,
        closes_at=closes,
        allow_reentry=bool(event.allow_reentry),
        cancelled=event.status == EventStatus.CANCELLED,
    )


def enter_in_db(
    session: Session,
    info: EventInfo,
    ticket_id: int,
    request: ScanRequest,
    *,
    redis_pending: bool = False,
) -> tuple[str, str | None, str | None]:
    """The scan's effect on the ticket's entry: (result, first entry's time and gate when
    already used). ``redis_pending``: a change is marked for Redis, which did not see it."""
    entry = session.get(CheckinEntry, ticket_id, with_for_update=True, populate_existing=True)
    decision = decide_entry(
        entry.state if entry is not None else None, request.direction, info.allow_reentry
    )
    at = request.scanned_at
    pending = utcnow() if redis_pending else None
    if entry is None and decision.state is not None:
        taken = session.execute(
            pg_insert(CheckinEntry)
            .values(
                ticket_id=ticket_id,
                event_id=info.event_id,
                state=decision.state,
                first_at=at,
                first_gate=request.gate,
                last_at=at,
                redis_pending_at=pending,
            )
            .on_conflict_do_nothing()
            .returning(CheckinEntry.ticket_id)
        ).scalar()
        if taken is None:  # another gate's first entry won: decide again on its row
            return enter_in_db(session, info, ticket_id, request, redis_pending=redis_pending)
    elif entry is not None and decision.state != entry.state:
        entry.state, entry.last_at = decision.state, at
        if pending is not None:
            entry.redis_pending_at = pending
    if decision.result == ScanResult.ALREADY_USED:
        return decision.result, iso(entry.first_at), entry.first_gate
    return decision.result, None, None


def _details() -> Select[Any]:
    return (
        select(
            Ticket.id,
            EventSection.name,
            EventSpot.label,
            Ticket.holder_name,
            TicketType.name.label("ticket_type"),
            TicketType.kind.label("ticket_kind"),
        )
        .join(EventSection, EventSection.id == Ticket.section_id)
        .join(EventSpot, EventSpot.id == Ticket.spot_id)
        .outerjoin(TicketType, TicketType.id == Ticket.ticket_type_id)
    )


def _detail(row: Row[Any]) -> dict[str, Any]:
    """What a gate shows of a ticket: section, seat, holder and type (a half-price ticket's
    holder shows the document that entitles them)."""
    detail = {
        "section": row.name,
        "seat": seat_label(row.name, row.label),
        "holder_name": row.holder_name,
    }
    if row.ticket_type is not None:
        detail["ticket_type"] = row.ticket_type
        detail["check_document"] = row.ticket_kind == TicketKind.HALF
    return detail


def ticket_details(session: Session, ticket_id: int) -> dict[str, Any]:
    row = session.execute(_details().where(Ticket.id == ticket_id)).first()
    return _detail(row) if row is not None else {}


def valid_ticket_details(
    session: Session, event_id: int, batch: int
) -> Iterator[dict[int, dict[str, Any]]]:
    """The details of the event's valid tickets, ``batch`` tickets at a time (a server-side
    cursor: a stadium's tickets are neither held in memory nor named one by one)."""
    query = _details().where(
        Ticket.event_id == event_id,
        Ticket.status == TicketStatus.VALID,
        # The same event's spots and sections, said again: the planner then reads only this
        # event's spots, not every event's (a hash join over the whole table).
        EventSpot.event_id == event_id,
        EventSection.event_id == event_id,
    )
    for rows in session.execute(query.execution_options(yield_per=batch)).partitions():
        yield {row.id: _detail(row) for row in rows}


def revoked_ticket_ids(session: Session, event_id: int) -> list[int]:
    """The event's tickets that admit nobody (refunded, cancelled, never issued, or
    transferred: reissued with a new code)."""
    return list(
        session.scalars(
            select(Ticket.id).where(
                Ticket.event_id == event_id,
                Ticket.status.in_(
                    [TicketStatus.REVOKED, TicketStatus.VOID, TicketStatus.TRANSFERRED]
                ),
            )
        )
    )


def entries_of(session: Session, event_id: int) -> list[Row[Any]]:
    """The event's entries: (ticket_id, state, first_at, first_gate) rows."""
    entry = CheckinEntry
    return list(
        session.execute(
            select(entry.ticket_id, entry.state, entry.first_at, entry.first_gate).where(
                entry.event_id == event_id
            )
        )
    )


def _log_row(
    scanner: Scanner,
    request: ScanRequest,
    fingerprint: str,
    outcome: Outcome,
    answer: dict[str, Any],
    recorded_at: dt.datetime,
) -> CheckIn:
    return CheckIn(
        event_id=outcome.log_event_id,
        ticket_id=outcome.ticket_id,
        gate=request.gate,
        direction=request.direction,
        result=outcome.result,
        nonce=scanner.scoped(request.nonce),
        request_fingerprint=fingerprint,
        scanned_at=request.scanned_at,
        recorded_at=recorded_at,
        device_id=scanner.device_id,
        user_id=scanner.user_id,
        offline=request.offline,
        device_verdict=request.device_verdict,
        conflict=bool(answer.get("conflict")),
    )


def logged_answer(session: Session, row: CheckIn) -> dict[str, Any]:
    """The answer a logged scan got, rebuilt for a retry with the same nonce."""
    answer: dict[str, Any] = {"result": row.result}
    if row.ticket_id is not None:
        answer["ticket_id"] = row.ticket_id
        answer["event_id"] = row.event_id
        answer.update(ticket_details(session, row.ticket_id))
    if row.result == ScanResult.ALREADY_USED and row.ticket_id is not None:
        entry = session.get(CheckinEntry, row.ticket_id)
        if entry is not None:
            answer["first_scan"] = {"at": iso(entry.first_at), "gate": entry.first_gate}
    if row.offline:
        answer["conflict"] = row.conflict
    return answer
