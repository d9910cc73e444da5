"""The scan log's way from Redis to the database: scans judged from Redis are queued there
(``redis_keys.LOG_KEY``) and written to ``checkin`` (and the entries to ``checkin_entry``) by
``flush_scan_log``, a Celery beat task. Idempotent by nonce, so a batch written but not trimmed
(a crash) is skipped the next time; the queue waits while the database is unreachable; a record
the database refuses goes to a dead-letter list instead of holding back every later scan.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from app.models import CheckIn, CheckinEntry
from app.services.checkin.redis_keys import LOG_KEY, redis_client
from app.services.checkin.rules import parse_time

log = logging.getLogger(__name__)

#: Scan log records the database refused, kept for inspection.
DEAD_LETTER_KEY = "ck:log:refused"


def flush_scan_log(session: Session, batch: int = 1000) -> int:
    """Write the scans queued in Redis to the database, oldest first, in batches; returns how
    many were written. Idempotent by nonce: a batch written but not trimmed (a crash) is
    skipped the next time. Leaves the queue alone while the database is unreachable."""
    cache = redis_client()
    if cache is None:
        return 0
    # One flusher at a time: two would trim each other's batches.
    lock = cache.lock("ck:log:flushing", timeout=300, blocking=False)
    if not lock.acquire():
        return 0
    try:
        return _flush(session, cache, batch)
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            log.warning("the scan log flush outlived its lock")


def _flush(session: Session, cache: redis.Redis, batch: int) -> int:
    written = 0
    while True:
        raw = cache.lrange(LOG_KEY, 0, batch - 1)
        if not raw:
            return written
        records = [json.loads(item) for item in raw]
        try:
            _write_scans(session, records)
            session.commit()
        except (IntegrityError, DataError):
            # One record the database refuses must not hold back every later scan.
            session.rollback()
            _write_one_by_one(session, cache, records)
        except SQLAlchemyError:
            session.rollback()
            log.warning("scan log not flushed: the database is unreachable", exc_info=True)
            return written
        cache.ltrim(LOG_KEY, len(raw), -1)
        written += len(raw)


def _write_one_by_one(session: Session, cache: redis.Redis, records: list[dict[str, Any]]) -> None:
    """Write a batch record by record; one the database refuses goes to a dead-letter list
    (kept for inspection) instead of blocking the queue."""
    for record in records:
        try:
            _write_scans(session, [record])
            session.commit()
        except (IntegrityError, DataError):
            session.rollback()
            log.error("scan log record refused by the database", extra={"nonce": record["nonce"]})
            cache.rpush(DEAD_LETTER_KEY, json.dumps(record))


def _write_scans(session: Session, records: list[dict[str, Any]]) -> None:
    rows = [
        {
            "event_id": r["event_id"],
            "ticket_id": r["ticket_id"],
            "gate": r["gate"],
            "direction": r["direction"],
            "result": r["result"],
            "nonce": r["nonce"],
            "request_fingerprint": r.get("request_fingerprint"),  # absent: queued before it was
            "scanned_at": parse_time(r["scanned_at"]),
            "recorded_at": parse_time(r["recorded_at"]),
            "device_id": r["device_id"],
            "user_id": r["user_id"],
            "offline": r["offline"],
            "device_verdict": r["device_verdict"],
            "conflict": r["conflict"],
        }
        for r in records
        if r["event_id"] is not None
    ]
    for record in records:
        if record["event_id"] is None:  # a scanner left with no event to log it under
            log.warning("scan dropped from the log", extra={"nonce": record["nonce"]})
    if rows:
        session.execute(pg_insert(CheckIn).on_conflict_do_nothing(), rows)
    for record in records:
        state = record.get("entry_state")
        if state is None:
            continue
        at = parse_time(record["scanned_at"])
        session.execute(
            pg_insert(CheckinEntry)
            .values(
                ticket_id=record["ticket_id"],
                event_id=record["event_id"],
                state=state,
                first_at=at,
                first_gate=record["gate"],
                last_at=at,
            )
            .on_conflict_do_update(
                index_elements=[CheckinEntry.ticket_id],
                set_={"state": state, "last_at": at},
                where=CheckinEntry.last_at <= at,
            )
        )
