"""A partner's webhook endpoints: registering one, changing it, rotating its secret.

A partner's users register endpoints for their own partner only; platform staff name the
partner. The address is https:// (plain http:// to this machine only outside production, for a
developer's own server: ``WebhookEndpoint.check``)."""

from __future__ import annotations

import datetime as dt

from flask import current_app
from flask_babel import gettext
from sqlalchemy.orm import Session

from app.models import DomainError, Forbidden, NotFound, Partner, WebhookEndpoint
from app.services.scoping import Actor, get_owned, is_platform_staff


def allow_local_http() -> bool:
    return current_app.config.get("APP_ENV") != "production"


def prepare_endpoint(session: Session, endpoint: WebhookEndpoint, actor: Actor | None) -> None:
    """Rules for a new endpoint: its partner (the user's own, or the one platform staff chose),
    its address and kinds; a new secret."""
    if is_platform_staff(actor):
        if endpoint.partner is None and endpoint.partner_id is None:
            raise DomainError(gettext("Choose the partner."), field="partner")
    else:
        partner_id = getattr(actor, "partner_id", None)
        if partner_id is None:
            raise Forbidden(gettext("Your user belongs to no partner."))
        if endpoint.partner is not None and endpoint.partner.id != partner_id:
            raise NotFound(gettext("Partner not found."), field="partner")
        endpoint.partner = session.get(Partner, partner_id)
    endpoint.secret = ""  # a new one, whatever a form sent
    endpoint.check(allow_local_http=allow_local_http())


def check_endpoint(endpoint: WebhookEndpoint) -> None:
    """Rules for a changed endpoint (its address, kinds, description, whether it is active)."""
    endpoint.check(allow_local_http=allow_local_http())


def rotate_secret(
    session: Session, endpoint_id: int, actor: Actor | None, now: dt.datetime
) -> WebhookEndpoint:
    """A new secret for the endpoint; the old one still signs for a day (ROTATION_OVERLAP)."""
    endpoint = get_owned(session, WebhookEndpoint, endpoint_id, actor)
    endpoint.rotate_secret(now)
    session.commit()
    return endpoint
