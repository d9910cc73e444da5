"""Arming: copying into Redis what judging an event's scans needs, so its gates keep working
with the database down (``redis_store``), and keeping that copy current.

``arm_event`` copies the public key and doors, revoked tickets, the entries so far, ticket
details and the credentials of the event's gate devices and staff. A Celery beat task arms the
events whose check-in opens soon (``arm_due_events``), and re-arms those armed in the last days,
whatever they became; a partner may arm one by hand; an event not armed is armed on its first
scan. Changes reach an armed event at once, each after its transaction commits: new doors,
re-entry rule or a cancellation (``refresh_armed_event``, from a Session listener), revoked
tickets (``note_revoked``) and changed gate staff (``scanners.staff_changed``).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections.abc import Iterable
from typing import Any

import redis
from flask import current_app
from flask_babel import gettext
from sqlalchemy import and_, or_, select
from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session, joinedload

from app.models import (
    Conflict,
    DomainError,
    Event,
    EventStatus,
    GateAssignment,
    GateDevice,
    PartnerUser,
)
from app.models.base import utcnow
from app.services.after_commit import after_commit
from app.services.checkin.db_store import (
    entries_of,
    event_info_from_db,
    event_info_of,
    revoked_ticket_ids,
    valid_ticket_details,
)
from app.services.checkin.errors import NotAuthorized
from app.services.checkin.redis_keys import (
    device_key,
    entries_key,
    entry_value,
    event_key,
    redis_client,
    revoked_key,
    tickets_key,
    user_key,
)
from app.services.checkin.rules import EventInfo, iso
from app.services.checkin.scanners import (
    DEVICE_CACHE_SECONDS,
    cache_scanner,
    device_scanner,
    forget_scanner,
    refuse_device,
    staff_changed,
    staff_scanner,
)
from app.services.scoping import Actor, get_owned

log = logging.getLogger(__name__)

# Revocations of an event that is not armed yet are kept this long (arming reads the rest).
UNARMED_REVOCATIONS_SECONDS = 7 * 24 * 3600
# Tickets read from the database and written to Redis at a time when arming.
ARM_BATCH = 5000


def arm_event(session: Session, event_id: int, now: dt.datetime | None = None) -> bool:
    """Copy what validation needs into Redis: the public key and window, revoked tickets, the
    entries so far, ticket details and the credentials of the event's gate devices and staff.
    Returns False for an event that cannot be scanned (unknown or draft)."""
    cache = redis_client()
    if cache is None:
        raise DomainError(gettext("Arming needs Redis (REDIS_URL)."), code="no_redis")
    info = event_info_from_db(session, event_id)
    if info is None:
        return False
    now = now or utcnow()
    expire_at = info.closes_at + dt.timedelta(days=2)
    ttl = max(3600, int((expire_at - now).total_seconds()))
    # Scans take an event whose hash is in Redis as armed: its tickets are copied first.
    _copy_tickets(session, cache, event_id, ttl)
    pipe = cache.pipeline()
    pipe.hset(
        event_key(event_id),
        mapping={"partner_id": info.partner_id, "public_key": info.public_key, **door_fields(info)},
    )
    pipe.expire(event_key(event_id), ttl)
    pipe.execute()
    _cache_credentials(session, event_id, ttl)
    event = session.get(Event, event_id)
    event.armed_at = now
    session.commit()
    return True


def _copy_tickets(session: Session, cache: redis.Redis, event_id: int, ttl: int) -> None:
    """Copy the event's revoked tickets, entries so far and ticket details into Redis, a batch
    at a time: a stadium has more tickets than a statement may bind parameters (65,535), or a
    Redis command should carry."""
    revoked = revoked_ticket_ids(session, event_id)
    for start in range(0, len(revoked), ARM_BATCH):
        # Revocations are never undone: add, never replace (a refund may commit while arming).
        cache.sadd(revoked_key(event_id), *revoked[start : start + ARM_BATCH])
    cache.expire(revoked_key(event_id), ttl)  # also those a refund added before arming
    entries = entries_of(session, event_id)
    for start in range(0, len(entries), ARM_BATCH):
        pipe = cache.pipeline(transaction=False)
        for entry in entries[start : start + ARM_BATCH]:
            # Redis may know newer scans than the database (the log is not flushed yet): keep
            # them.
            pipe.hsetnx(
                entries_key(event_id),
                entry.ticket_id,
                entry_value(entry.state, iso(entry.first_at), entry.first_gate),
            )
        pipe.execute()
    cache.expire(entries_key(event_id), ttl)
    for details in valid_ticket_details(session, event_id, ARM_BATCH):
        cache.hset(tickets_key(event_id), mapping={k: json.dumps(v) for k, v in details.items()})
    cache.expire(tickets_key(event_id), ttl)


def arm_owned_event(session: Session, actor: Actor, event_id: int) -> Event:
    """Arm an event by hand (its partner's staff or the platform)."""
    event = get_owned(session, Event, event_id, actor)
    if event.status != EventStatus.PUBLISHED:
        raise Conflict(
            gettext(
                "%(name)s is %(status)s: only a published event is armed.",
                name=event.name,
                status=event.status,
            )
        )
    arm_event(session, event.id)
    return event


def door_fields(info: EventInfo) -> dict[str, str]:
    """What of an armed event's hash can change after arming: its window, re-entry rule and
    whether it is cancelled."""
    return {
        "opens_at": iso(info.opens_at),
        "closes_at": iso(info.closes_at),
        "allow_reentry": "1" if info.allow_reentry else "0",
        "cancelled": "1" if info.cancelled else "0",
    }


def _cache_credentials(session: Session, event_id: int, ttl: int) -> None:
    devices = session.scalars(
        select(GateDevice)
        .join(GateDevice.events)
        .where(Event.id == event_id)
        .options(joinedload(GateDevice.events))
    ).unique()
    for device in devices:
        if device.revoked_at is not None:
            refuse_device(device.token_hash)
            continue
        cache_scanner(
            device_key(device.token_hash), device_scanner(device), ttl=DEVICE_CACHE_SECONDS
        )
    user_ids = session.scalars(
        select(GateAssignment.user_id).where(GateAssignment.event_id == event_id)
    ).all()
    for user_id in user_ids:
        try:
            cache_scanner(user_key(user_id), staff_scanner(session, user_id), ttl=ttl)
        except NotAuthorized:
            forget_scanner(user_key(user_id))


def arm_due_events(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Arm every published event whose check-in opens within ``CHECKIN_ARM_AHEAD_HOURS`` and has
    not closed; re-arming refreshes what changed in the database. An event armed in the last
    days is refreshed whatever it became (cancelled, its doors moved or closed early), so the
    gates never keep an old window or miss a cancellation that Redis did not hear of."""
    now = now or utcnow()
    ahead = dt.timedelta(hours=current_app.config["CHECKIN_ARM_AHEAD_HOURS"])
    due = and_(
        Event.status == EventStatus.PUBLISHED,
        Event.starts_at <= now + ahead + dt.timedelta(days=1),
        Event.starts_at >= now - dt.timedelta(days=3),
    )
    armed_since = now - dt.timedelta(days=3)
    candidates = session.scalars(select(Event).where(or_(due, Event.armed_at >= armed_since)))
    armed = []
    for event in candidates.all():
        opens, closes = event.checkin_window()
        in_window = event.status == EventStatus.PUBLISHED and opens - ahead <= now <= closes
        was_armed = event.armed_at is not None and event.armed_at >= armed_since
        if (in_window or was_armed) and arm_event(session, event.id, now):
            armed.append(event.id)
    return armed


# What the gates hold of an event, refreshed in Redis when one of these changes.
_GATE_FIELDS = frozenset(
    {"status", "starts_at", "ends_at", "checkin_opens_at", "checkin_closes_at", "allow_reentry"}
)


@sa_event.listens_for(Session, "after_flush")
def _note_gate_changes(session: Session, _context: Any) -> None:
    """Events whose doors, re-entry or status changed, and users whose account or roles
    changed: their cached gate state is refreshed once the transaction commits."""
    for row in (*session.dirty, *session.deleted):
        state = sa_inspect(row)
        if isinstance(row, Event) and state.persistent:
            if any(state.attrs[key].history.has_changes() for key in _GATE_FIELDS):
                fields = door_fields(event_info_of(row))
                after_commit(session, functools.partial(refresh_armed_event, row.id, fields))
        elif isinstance(row, PartnerUser):
            history = [state.attrs[key].history for key in ("active", "roles", "partner_id")]
            if row in session.deleted or any(h.has_changes() for h in history):
                after_commit(session, functools.partial(staff_changed, row.id))


def refresh_armed_event(event_id: int, fields: dict[str, str]) -> None:
    """Tell an armed event's gates at once of its new doors, re-entry rule or cancellation (an
    event not armed reads them when it is)."""
    cache = redis_client()
    if cache is None:
        return
    try:
        if cache.exists(event_key(event_id)):
            cache.hset(event_key(event_id), mapping=fields)
    except redis.RedisError:
        log.error("could not refresh armed event %s in Redis; the next arming run will", event_id)


def note_revoked(event_id: int, ticket_ids: Iterable[int]) -> None:
    """Tell an armed event's gates at once that these tickets no longer admit anyone."""
    cache = redis_client()
    ids = list(ticket_ids)
    if cache is None or not ids:
        return
    try:
        # Added whether the event is armed or not: arming may have read the revoked tickets
        # before this refund committed, and would never learn of it.
        ttl = cache.ttl(event_key(event_id))
        pipe = cache.pipeline()
        pipe.sadd(revoked_key(event_id), *ids)
        pipe.expire(revoked_key(event_id), ttl if ttl > 0 else UNARMED_REVOCATIONS_SECONDS)
        pipe.execute()
    except redis.RedisError:
        log.error("could not push revocations to Redis; re-arm event %s", event_id)


def note_revoked_after_commit(session: Session, event_id: int, ticket_ids: Iterable[int]) -> None:
    """``note_revoked`` once the caller's transaction commits (nothing if it rolls back)."""
    ids = list(ticket_ids)
    after_commit(session, lambda: note_revoked(event_id, ids))


def revoke_before_commit(event_id: int, ticket_ids: Iterable[int]) -> None:
    """Tell the gates now, before the caller's transaction commits, that these tickets admit
    nobody (a transfer: the caller then checks the tickets were not used, so that no scan judged
    in Redis slips in between the check and the revocation). Raises ``redis.RedisError`` when
    Redis is configured but unreachable: the caller refuses rather than leave Redis's gates
    admitting a code the database revoked. Undone by ``unrevoke`` if the caller rolls back."""
    cache = redis_client()
    ids = list(ticket_ids)
    if cache is None or not ids:
        return
    ttl = cache.ttl(event_key(event_id))
    pipe = cache.pipeline()
    pipe.sadd(revoked_key(event_id), *ids)
    pipe.expire(revoked_key(event_id), ttl if ttl > 0 else UNARMED_REVOCATIONS_SECONDS)
    pipe.execute()


def unrevoke(event_id: int, ticket_ids: Iterable[int]) -> None:
    """Undo ``revoke_before_commit`` after the caller rolled back."""
    cache = redis_client()
    ids = list(ticket_ids)
    if cache is None or not ids:
        return
    try:
        cache.srem(revoked_key(event_id), *ids)
    except redis.RedisError:
        log.error("could not undo a revocation in Redis; re-arm event %s", event_id)


def note_ticket_details(event_id: int, details: dict[int, dict[str, Any]]) -> None:
    """Tell the gates what they show of these tickets (a new holder's name, a transferred
    ticket's successor): written whether the event is armed or not, like revocations, since
    arming may have read the tickets before the change committed."""
    cache = redis_client()
    if cache is None or not details:
        return
    try:
        ttl = cache.ttl(event_key(event_id))
        pipe = cache.pipeline()
        pipe.hset(tickets_key(event_id), mapping={k: json.dumps(v) for k, v in details.items()})
        pipe.expire(tickets_key(event_id), ttl if ttl > 0 else UNARMED_REVOCATIONS_SECONDS)
        pipe.execute()
    except redis.RedisError:
        log.error("could not push ticket details to Redis; re-arm event %s", event_id)
