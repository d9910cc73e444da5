"""What a gate page downloads: the events a scanner may scan, and an event's manifest for
judging tickets offline (public key, doors, re-entry rule, revoked tickets and the entries so
far). An armed event's manifest comes from Redis, which stays current without the database; the
database answers otherwise, and while Redis is unreachable.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.models import Event, EventStatus, NotFound
from app.models.base import utcnow
from app.services.checkin.db_store import entries_of, event_info_from_db, revoked_ticket_ids
from app.services.checkin.errors import unavailable_without_database
from app.services.checkin.redis_keys import entries_key, read_entry, redis_client, revoked_key
from app.services.checkin.redis_store import RedisStore
from app.services.checkin.rules import EventInfo, iso
from app.services.checkin.scanners import Scanner

log = logging.getLogger(__name__)


def scannable_events(session: Session, scanner: Scanner) -> list[dict[str, Any]]:
    if not scanner.event_ids:
        return []
    events = session.scalars(
        select(Event)
        .where(Event.id.in_(scanner.event_ids), Event.status != EventStatus.DRAFT)
        .order_by(Event.starts_at)
    ).all()
    return [
        {
            "id": e.id,
            "name": e.name,
            "venue": e.venue,
            "starts_at": iso(e.starts_at),
            "timezone": e.timezone,
            "armed": e.armed_at is not None,
        }
        for e in events
    ]


def manifest(session: Session, scanner: Scanner, event_id: int) -> dict[str, Any]:
    """What an offline gate needs: the public key, the window, revoked tickets and the entries
    so far (from Redis when armed, which stays current without the database)."""
    if event_id not in scanner.event_ids:
        raise NotFound(gettext("Event not found."))
    cache = redis_client()
    with unavailable_without_database(session):
        if cache is None:
            return _manifest_from_db(session, event_id)
        try:
            return _manifest_from_redis(session, cache, event_id)
        except (redis.ConnectionError, redis.TimeoutError):
            log.error("Redis is unreachable: the manifest comes from the database")
            return _manifest_from_db(session, event_id)


def _manifest_from_redis(session: Session, cache: redis.Redis, event_id: int) -> dict[str, Any]:
    info = RedisStore(cache, session).event_info(event_id)
    if info is None:
        raise NotFound(gettext("Event not found."))
    revoked = sorted(int(t) for t in cache.smembers(revoked_key(event_id)))
    entries = []
    for ticket, raw in cache.hgetall(entries_key(event_id)).items():
        state, first_at, gate = read_entry(raw)
        entries.append({"ticket_id": int(ticket), "state": state, "at": first_at, "gate": gate})
    return _manifest_json(session, info, revoked, entries)


def _manifest_from_db(session: Session, event_id: int) -> dict[str, Any]:
    info = event_info_from_db(session, event_id)
    if info is None:
        raise NotFound(gettext("Event not found."))
    entries = [
        {"ticket_id": e.ticket_id, "state": e.state, "at": iso(e.first_at), "gate": e.first_gate}
        for e in entries_of(session, event_id)
    ]
    return _manifest_json(session, info, revoked_ticket_ids(session, event_id), entries)


def _manifest_json(
    session: Session, info: EventInfo, revoked: list[int], entries: list[dict[str, Any]]
) -> dict[str, Any]:
    name, timezone = _label_if_reachable(session, info.event_id)
    return {
        "event_id": info.event_id,
        "name": name,
        "timezone": timezone,  # the gate shows times in the venue's zone (None: the device's)
        "public_key": info.public_key,
        "opens_at": iso(info.opens_at),
        "closes_at": iso(info.closes_at),
        "allow_reentry": info.allow_reentry,
        "cancelled": info.cancelled,
        "revoked": revoked,
        "entries": sorted(entries, key=lambda e: e["ticket_id"]),
        "generated_at": iso(utcnow()),
    }


def _label_if_reachable(session: Session, event_id: int) -> tuple[str | None, str | None]:
    """The event's name and time zone, or Nones when the database cannot be reached (the gate
    still works)."""
    try:
        row = session.execute(
            select(Event.name, Event.timezone).where(Event.id == event_id)
        ).first()
    except SQLAlchemyError:
        session.rollback()
        return None, None
    return (row.name, row.timezone) if row is not None else (None, None)
