"""Platform-side partner use cases: approval and suspension."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.models import Partner
from app.services.scoping import Actor, get_owned


def approve_partner(session: Session, partner_id: int, actor: Actor | None) -> Partner:
    partner = get_owned(session, Partner, partner_id, actor)
    partner.approve()
    session.commit()
    return partner


def suspend_partner(session: Session, partner_id: int, actor: Actor | None) -> Partner:
    partner = get_owned(session, Partner, partner_id, actor)
    partner.suspend()
    session.commit()
    return partner
