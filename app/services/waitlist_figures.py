"""The partner's figures of the waiting lists (services/waitlist.py says how the lines move):
per event, how many wait, hold an offer, converted, let it expire, left."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.models import Event, WaitlistEntry, WaitlistStatus


@dataclass(frozen=True)
class Conversions:
    event_id: int
    event_name: str
    waiting: int
    offered: int
    converted: int
    expired: int
    left: int

    @property
    def rate(self) -> float | None:
        """Converted of the offers that ended (paid or not), None before any ended."""
        ended = self.converted + self.expired
        return self.converted / ended if ended else None


def conversions(session: Session, scope: Any = None) -> list[Conversions]:
    """Per event with a waiting list: how many entries wait, hold an offer, converted, let it
    expire, left; ``scope``: a clause on Event (the partner's), None for every event."""
    counts = [
        func.count(case((WaitlistEntry.status == status.value, 1))).label(status.value)
        for status in WaitlistStatus
    ]
    query = (
        select(Event.id, Event.name, *counts)
        .join(WaitlistEntry, WaitlistEntry.event_id == Event.id)
        .group_by(Event.id, Event.name)
        .order_by(Event.starts_at, Event.id)
    )
    if scope is not None:
        query = query.where(scope)
    return [
        Conversions(
            row.id,
            row.name,
            row.waiting,
            row.offered,
            row.converted,
            row.expired,
            row.left,
        )
        for row in session.execute(query)
    ]
