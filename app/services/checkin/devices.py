"""Gate administration by a partner's staff: registering and revoking gate devices, assigning
gate users to events. A device scans the events of one partner; its token is shown once and
kept only as a hash. Revoking a device refuses it in Redis at once (``scanners.refuse_device``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    DomainError,
    Event,
    GateAssignment,
    GateDevice,
    NotFound,
    PartnerUser,
    token_hash,
)
from app.models.base import utcnow
from app.services.checkin.scanners import refuse_device, staff_changed
from app.services.scoping import Actor, get_owned, get_owned_many, role_names


def register_device(
    session: Session, actor: Actor, name: str, event_ids: Sequence[int]
) -> tuple[GateDevice, str]:
    """A new gate device for the actor's partner; returns it and its token (shown once)."""
    device = GateDevice(name=name, events=list(get_owned_many(session, Event, event_ids, actor)))
    token = prepare_device(session, actor, device)
    session.add(device)
    session.commit()
    return device, token


def prepare_device(session: Session, actor: Actor, device: GateDevice) -> str:
    """Check a new device (a name, events of one partner the actor owns), tie it to that partner
    and give it a fresh token; returns the token, which is kept only as a hash."""
    check_device(session, actor, device)
    token = secrets.token_urlsafe(32)
    device.token_hash = token_hash(token)
    device.token_hint = token[:6]
    return token


def check_device(session: Session, actor: Actor, device: GateDevice) -> None:
    device.name = (device.name or "").strip()
    if not device.name:
        raise DomainError(
            gettext("Name the device (for example 'North gate phone 1')."), field="name"
        )
    if not device.events:
        raise DomainError(gettext("Choose at least one event for this device."), field="events")
    owned = get_owned_many(session, Event, [e.id for e in device.events], actor)
    partners = {event.partner_id for event in owned}
    if len(partners) != 1:
        raise DomainError(gettext("A device scans the events of one partner."), field="events")
    partner_id = partners.pop()
    if device.partner_id is not None and device.partner_id != partner_id:
        raise DomainError(
            gettext("A device keeps the partner it was registered for."), field="events"
        )
    device.partner_id = partner_id


def revoke_device(session: Session, actor: Actor, device_id: int) -> GateDevice:
    """The device is refused from now on, in Redis (at once) and in the database."""
    device = get_owned(session, GateDevice, device_id, actor)
    if device.revoked_at is None:
        device.revoked_at = utcnow()
        session.commit()
    refuse_device(device.token_hash)
    return device


def assign_gate_user(session: Session, actor: Actor, user_id: int, event_id: int) -> None:
    event = get_owned(session, Event, event_id, actor)
    user = session.get(PartnerUser, user_id)
    if user is None or user.partner_id != event.partner_id or "Gate" not in role_names(user):
        raise NotFound(gettext("Gate user not found."), field="user")
    exists = session.scalar(
        select(GateAssignment.id).where(
            GateAssignment.user_id == user_id, GateAssignment.event_id == event_id
        )
    )
    if exists is None:
        session.add(GateAssignment(user_id=user_id, event_id=event_id))
        session.commit()
    staff_changed(user_id)
