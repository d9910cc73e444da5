"""Whether tickets were used: their first accepted entry at the gates, wherever it is kept.

An entry is in the database (``checkin_entry``), or, for an armed event, in Redis until the scan
log is flushed (``ck:en:<event>``): both are read, Redis in one round trip for the tickets the
database does not know yet. An offline device's scans count once they are uploaded.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import CheckinEntry
from app.models.base import any_of
from app.services.checkin.redis_keys import entries_key, read_entry, redis_client
from app.services.checkin.rules import parse_time

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """A ticket's first accepted entry: when and at which gate."""

    ticket_id: int
    at: dt.datetime
    gate: str


def first_entries(
    session: Session, event_id: int, ticket_ids: Iterable[int], *, strict: bool = False
) -> dict[int, Entry]:
    """The first entries of these tickets of ``event_id``, by ticket id (a ticket never admitted
    is absent). While Redis is unreachable only the database's are known (logged), or, with
    ``strict``, the Redis error is raised (the caller must not go on without knowing)."""
    wanted = sorted(set(ticket_ids))
    if not wanted:
        return {}
    found = {
        row.ticket_id: Entry(row.ticket_id, row.first_at, row.first_gate)
        for row in session.execute(
            select(CheckinEntry.ticket_id, CheckinEntry.first_at, CheckinEntry.first_gate).where(
                any_of(CheckinEntry.ticket_id, wanted)
            )
        )
    }
    cache = redis_client()
    unknown = [ticket_id for ticket_id in wanted if ticket_id not in found]
    if cache is None or not unknown:
        return found
    try:
        raws = cache.hmget(entries_key(event_id), unknown)
    except (redis.ConnectionError, redis.TimeoutError):
        if strict:
            raise
        log.error(
            "Redis is unreachable: entries not flushed yet are not seen",
            extra={"event_id": event_id, "tickets": unknown},
        )
        return found
    for ticket_id, raw in zip(unknown, raws, strict=True):
        if raw:
            _, first_at, gate = read_entry(raw)
            found[ticket_id] = Entry(ticket_id, parse_time(first_at), gate)
    return found
