"""Entries the database store took while Redis was unreachable, told to Redis when it answers
again, so that Redis never judges from a copy older than the database's.

While Redis is unreachable, the database store judges every scan (``scanning.scan``) and marks
each entry it changes (``checkin_entry.redis_pending_at``, in the scan's transaction). Redis
learns those entries, and the marks are cleared, by ``settle``:

- on the node that fell back, before it answers from Redis again: it notes that it fell back
  (``note_fallback``), its fast path defers to the full path while it ``owes`` Redis, and the
  full path flushes the scan log and settles before its first Redis scan
  (``scan_log.settle_after_fallback``);
- on any node, by the scan log's flush (a beat task every 5 seconds), for the nodes that never
  scan again or died meanwhile.

Until then nothing is admitted twice while the database is reachable: every admission Redis
grants is checked against the database before it is answered (``scan_log.write_through``).
What settling adds is that Redis, and a gate judging from it alone (the database down next), or
an offline gate downloading its manifest, also has those entries; and a holder who went out
during the outage is let in again (re-entry) instead of being refused from Redis's old copy.

The database's entry replaces Redis's, being the newer: the database store saw every entry
Redis took before it failed (written through), and what Redis took of these tickets since it
came back was written through as well, or is in the scan log's queue, which is flushed first.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

import redis
from flask import Flask, current_app
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.models import CheckinEntry
from app.services.checkin.redis_keys import entries_key, entry_value
from app.services.checkin.rules import iso

log = logging.getLogger(__name__)

#: Marked entries read and told to Redis at a time.
SETTLE_BATCH = 5000
#: The life of an entries hash that settling creates (Redis came back without the event armed);
#: arming sets the event's own.
UNARMED_ENTRIES_SECONDS = 7 * 24 * 3600

_FELL_BACK = "checkin.fell_back"
_LOCK = threading.Lock()


def note_fallback(app: Flask | None = None) -> None:
    """This node judged a scan from the database because Redis was unreachable (noted after
    the scan's transaction, so that a settling already under way does not clear it)."""
    state = (app or current_app).extensions
    with _LOCK:
        state[_FELL_BACK] = state.get(_FELL_BACK, 0) + 1


def owes(app: Flask) -> bool:
    """Whether this node fell back since it last settled (its fast path defers meanwhile)."""
    return bool(app.extensions.get(_FELL_BACK))


def owed() -> int:
    """How often this node fell back (0: never since it last settled)."""
    return int(current_app.extensions.get(_FELL_BACK, 0))


def settled(owed: int) -> None:
    """This node settled what it owed when it had fallen back ``owed`` times; a fallback since
    keeps it owing."""
    state = current_app.extensions
    with _LOCK:
        if state.get(_FELL_BACK) == owed:
            state[_FELL_BACK] = 0


def settle(session: Session, client: redis.Redis) -> bool:
    """Tell Redis every entry marked for it, and clear the marks; returns False when the
    database is unreachable (nothing done). Redis errors are raised (the marks stay)."""
    while True:
        try:
            rows = session.execute(
                select(
                    CheckinEntry.ticket_id,
                    CheckinEntry.event_id,
                    CheckinEntry.state,
                    CheckinEntry.first_at,
                    CheckinEntry.first_gate,
                    CheckinEntry.redis_pending_at,
                )
                .where(CheckinEntry.redis_pending_at.is_not(None))
                .order_by(CheckinEntry.redis_pending_at)
                .limit(SETTLE_BATCH)
            ).all()
            session.rollback()
        except SQLAlchemyError:
            session.rollback()
            log.warning("entries for Redis not settled: the database is unreachable")
            return False
        if not rows:
            return True
        by_event: dict[int, dict[int, str]] = defaultdict(dict)
        for row in rows:
            value = entry_value(row.state, iso(row.first_at), row.first_gate)
            by_event[row.event_id][row.ticket_id] = value
        pipe = client.pipeline()
        for event_id, entries in by_event.items():
            pipe.hset(entries_key(event_id), mapping=entries)
            pipe.expire(entries_key(event_id), UNARMED_ENTRIES_SECONDS, nx=True)
        pipe.execute()
        table = CheckinEntry.__table__
        try:
            # A mark set again since it was read (another change) stays for the next round.
            session.execute(
                update(table)
                .where(
                    table.c.ticket_id == bindparam("t"),
                    table.c.redis_pending_at == bindparam("at"),
                )
                .values(redis_pending_at=None),
                [{"t": row.ticket_id, "at": row.redis_pending_at} for row in rows],
            )
            session.commit()
        except SQLAlchemyError:
            session.rollback()
            log.warning("entries told to Redis, marks not cleared: the database is unreachable")
            return False
        log.info("told Redis of %s entries the database took while it was away", len(rows))
        if len(rows) < SETTLE_BATCH:
            return True
