"""Platform-side partner use cases: approval, suspension and the payout reserve."""

from __future__ import annotations

from decimal import Decimal

from flask_babel import gettext
from sqlalchemy.orm import Session

from app.models import Forbidden, Partner
from app.services.mail import partner_mails
from app.services.scoping import Actor, get_owned, is_platform_staff


def approve_partner(session: Session, partner_id: int, actor: Actor | None) -> Partner:
    partner = get_owned(session, Partner, partner_id, actor)
    partner.approve()
    partner_mails.queue_approved(session, partner)  # and again when reinstated
    session.commit()
    return partner


def suspend_partner(session: Session, partner_id: int, actor: Actor | None) -> Partner:
    partner = get_owned(session, Partner, partner_id, actor)
    partner.suspend()
    session.commit()
    return partner


def set_reserve(
    session: Session, partner_id: int, percent: Decimal | None, actor: Actor | None
) -> Partner:
    """The percentage of the partner's recent settled net its payouts hold back (admins and
    finance: a partner does not set its own)."""
    if not is_platform_staff(actor):
        raise Forbidden(gettext("Only the platform sets a partner's payout reserve."))
    partner = get_owned(session, Partner, partner_id, actor)
    partner.set_reserve(percent)
    session.commit()
    return partner
