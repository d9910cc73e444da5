"""A customer's e-mail address, confirmed: the link e-mailed at sign-up.

The link carries the customer's id and address, signed with the app's SECRET_KEY
(itsdangerous, its own salt) and timed: it works CONFIRM_DAYS after the mail was written. It is
signed when the mail is rendered, not stored: the outbox row holds only the customer's id, so
no usable link sits in the database. A link for an address the customer has since changed
confirms nothing.

Until the address is confirmed, the mails that carry the customer's tickets (order
confirmations) wait in the outbox (held), so a mistyped address's owner does not get them;
notices (a refund, an event cancelled or moved) go at once, and buying is not blocked.
Confirming releases the held mails (``outbox.release_held``).
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_babel import gettext
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from app.models import Customer, DomainError
from app.models.base import utcnow
from app.services.mail import outbox

MAIL_KIND = "email_confirm"
CONFIRM_DAYS = 7
_SALT = "bilheteria.email-confirm"


class BadConfirmationLink(DomainError):
    """Not a link we signed, or one for another address."""

    code = "invalid_link"


class ExpiredConfirmationLink(BadConfirmationLink):
    code = "link_expired"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def link_token(customer: Customer) -> str:
    """The signed token of the confirmation link (written when the mail is rendered)."""
    return str(_serializer().dumps({"c": customer.id, "e": customer.email}))


def send_link(session: Session, customer: Customer, locale: str, *, again: bool = False) -> bool:
    """Write the confirmation mail, in the caller's transaction (never held: it is how the
    address gets confirmed). ``again``: a new mail each second it is asked, not only the
    first; a double click is one mail. Whether a mail was written."""
    key = f"{MAIL_KIND}:{customer.id}"
    if again:
        key += f":{int(utcnow().timestamp())}"
    mail_id = outbox.queue(
        session,
        MAIL_KIND,
        customer.email,
        key=key,
        locale=locale,
        params={"customer_id": customer.id},
    )
    return mail_id is not None


def resend(session: Session, customer: Customer) -> bool:
    """A signed-in customer asks for the link again (the first expired or was lost). Nothing
    when the address is already confirmed. Commits."""
    if customer.email_confirmed_at is not None:
        return False
    written = send_link(session, customer, outbox.locale_of(session, customer.user_id), again=True)
    session.commit()
    return written


def confirm(session: Session, token: str) -> Customer:
    """The customer of a valid link, now confirmed (already confirmed: unchanged), and the mails
    held for the address released. BadConfirmationLink or ExpiredConfirmationLink otherwise.
    Commits."""
    try:
        claims: Any = _serializer().loads(token, max_age=CONFIRM_DAYS * 86400)
    except SignatureExpired as exc:
        raise ExpiredConfirmationLink(
            gettext("This confirmation link has expired: ask for a new one.")
        ) from exc
    except BadSignature as exc:
        raise BadConfirmationLink(_bad_link()) from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("c"), int):
        raise BadConfirmationLink(_bad_link())
    customer = session.get(Customer, claims["c"], with_for_update=True)
    if customer is None or customer.email != claims.get("e"):
        session.rollback()
        raise BadConfirmationLink(_bad_link())
    if customer.email_confirmed_at is None:
        customer.email_confirmed_at = utcnow()
        outbox.release_held(session, customer.email)
    session.commit()
    return customer


def _bad_link() -> str:
    return gettext("This confirmation link is not valid.")
