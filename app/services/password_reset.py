"""Password reset: a single-use link e-mailed to the address of an account.

**Asking never tells whether an address has an account**, by its answer or by its time. The
request (page or API) does the same for every address: it hands the typed address to a task
(``ask``, the task ``accounts.request_reset``) and answers; the lookup, the limits, the writes
and the mail are the worker's (``request_reset``), out of the answer's time. Without a broker
(the tests' default app, the demo: CELERY_TASK_ALWAYS_EAGER) the task runs inline in the
request, and its time shows again; production always has a broker.

**A link's token is never stored.** It is derived: the reset's id and an HMAC-SHA256, keyed by
SECRET_KEY, of the reset's id, user and creation time (``link_token``). The table keeps only the
token's SHA-256 (``PasswordReset.token_hash``, what a link is looked up by) and the outbox row
only the reset's id: the mail's renderer computes the token again when it writes the link. So
neither the database nor the dashboard's outbox pages can give a working link; the secret key
is needed too. A link works for PASSWORD_RESET_MINUTES, once; asking again voids the older
links still unused, and a mail whose link died before it went out is not sent
(``app/services/mail/account_mails.py``). A new SECRET_KEY voids the links not yet used.

**Mail bombing.** At most RATELIMIT_PASSWORD_RESET links per account (say "5 per hour"): past
that, asking again silently sends nothing, so that nobody can flood an inbox and the answer
still does not tell the address exists. The per-client-address limit is the views' (429).

**Resetting** checks the new password by the one rule (``accounts``), marks the link used and
ends every session and API token of the user (``accounts.end_sessions``), in one transaction. A
staff user's new password is in the audit log like any change of a staff user (its value
redacted: ``app/services/audit.py``). A customer who had not confirmed their address has now
proved they read it: it counts as confirmed, and their held mails go out.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets

from flask import current_app
from flask_babel import gettext
from limits import parse_many
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.extensions import celery
from app.models import Customer, DomainError, PartnerUser, PasswordReset
from app.models.base import utcnow
from app.services import accounts
from app.services.mail import outbox

MAIL_KIND = "password_reset"
REQUEST_TASK = "accounts.request_reset"  # app/tasks/accounts.py
_MAX_ADDRESS = 320


class InvalidLink(DomainError):
    """The link is unknown, used, voided by a newer one, or expired."""

    code = "invalid_link"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def mail_key(reset_id: int) -> str:
    return f"{MAIL_KIND}:{reset_id}"


def link_token(reset: PasswordReset) -> str:
    """The token of the reset's link: its id and an HMAC of what the row says, keyed by
    SECRET_KEY (the row alone cannot give it). The same for the row as written and as read
    back, so the renderer writes the link the row's hash was taken of."""
    created = reset.created_at.replace(tzinfo=None).isoformat(timespec="microseconds")
    message = f"password-reset:{reset.id}:{reset.user_id}:{created}"
    digest = hmac.new(
        current_app.config["SECRET_KEY"].encode("utf-8"), message.encode("utf-8"), hashlib.sha256
    ).digest()
    return f"{reset.id}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode('ascii')}"


def ask(email: str) -> None:
    """The request's part of asking for a link: only hands the typed address to the worker
    (``request_reset``), whatever it is, so that every address answers alike. Reads and writes
    nothing here (inline where the task runs eagerly: see the module's docstring)."""
    celery.tasks[REQUEST_TASK].delay((email or "")[: _MAX_ADDRESS + 1])  # longer: refused there


def request_reset(session: Session, email: str) -> int | None:
    """E-mail a reset link to the active account of ``email`` (the worker's part of ``ask``);
    the new link's id, or None when nothing was sent (no such account, inactive, or too many
    links lately). Commits."""
    address = (email or "").strip().lower()
    if not address or len(address) > _MAX_ADDRESS or not accounts.storable(address):
        session.rollback()
        return None
    user = session.execute(
        select(PartnerUser.id, PartnerUser.email, PartnerUser.active)
        .where(func.lower(PartnerUser.email) == address)
        .order_by(PartnerUser.id)
        .limit(1)
        .with_for_update()  # one asker at a time per account: the count below is exact
    ).first()
    if user is None or not user.active or _too_many(session, user.id):
        session.rollback()
        return None
    now = utcnow()
    _void_earlier(session, user.id, now)
    reset = PasswordReset(
        user_id=user.id,
        token_hash=secrets.token_hex(32),  # a stand-in, unique like a hash: the id is not known
        created_at=now,
        expires_at=now + dt.timedelta(minutes=current_app.config["PASSWORD_RESET_MINUTES"]),
    )
    session.add(reset)
    session.flush()
    reset.token_hash = token_hash(link_token(reset))
    outbox.queue(
        session,
        MAIL_KIND,
        user.email,
        key=mail_key(reset.id),
        locale=outbox.locale_of(session, user.id),
        params={"reset_id": reset.id},
    )
    session.commit()
    return reset.id


def _too_many(session: Session, user_id: int) -> bool:
    """Whether the account had its share of links lately (each limit of the setting)."""
    for limit in parse_many(current_app.config["RATELIMIT_PASSWORD_RESET"]):
        since = utcnow() - dt.timedelta(seconds=limit.get_expiry())
        recent = session.scalar(
            select(func.count())
            .select_from(PasswordReset)
            .where(PasswordReset.user_id == user_id, PasswordReset.created_at > since)
        )
        if (recent or 0) >= limit.amount:
            return True
    return False


def _void_earlier(session: Session, user_id: int, now: dt.datetime) -> None:
    session.execute(
        update(PasswordReset)
        .where(
            PasswordReset.user_id == user_id,
            PasswordReset.used_at.is_(None),
            PasswordReset.voided_at.is_(None),
        )
        .values(voided_at=now)
    )


def usable(reset: PasswordReset | None, now: dt.datetime | None = None) -> bool:
    """Whether a link may still be used."""
    now = now or utcnow()
    return (
        reset is not None
        and reset.used_at is None
        and reset.voided_at is None
        and reset.expires_at > now
    )


def valid_link(session: Session, token: str) -> PasswordReset:
    """The link of ``token`` if it may be used, else InvalidLink (the page that asks for the new
    password, before it is typed)."""
    reset = _find(session, token)
    if not usable(reset):
        raise InvalidLink(_invalid_message())
    assert reset is not None
    return reset


def reset_password(session: Session, token: str, new_password: str) -> PartnerUser:
    """Set the password of the link's user: InvalidLink for a link that may not be used,
    WeakPassword (field ``password``) for a password the rule refuses (the link stays
    usable). Marks the link used and ends every session and token of the user. Commits."""
    reset = _find(session, token, lock=True)
    user = session.get(PartnerUser, reset.user_id) if usable(reset) else None
    if reset is None or user is None or not user.active:
        session.rollback()
        raise InvalidLink(_invalid_message())
    accounts.check_password(
        new_password, [user.username, user.email, user.first_name, user.last_name]
    )
    reset.used_at = utcnow()
    _confirm_customer_address(session, user)
    accounts.set_password(session, user, new_password)  # ends sessions; commits
    return user


def _find(session: Session, token: str, *, lock: bool = False) -> PasswordReset | None:
    if not isinstance(token, str) or not token or len(token) > 200:
        return None
    if not accounts.storable(token):
        return None
    query = select(PasswordReset).where(PasswordReset.token_hash == token_hash(token))
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def _invalid_message() -> str:
    return gettext(
        "This password-reset link is not valid any more: it was used, a newer one was sent, "
        "or it expired. Ask for a new one."
    )


def _confirm_customer_address(session: Session, user: PartnerUser) -> None:
    """Reading the link proved the customer reads the account's address."""
    customer = session.scalar(select(Customer).where(Customer.user_id == user.id))
    if (
        customer is not None
        and customer.email_confirmed_at is None
        and customer.email.lower() == (user.email or "").lower()
    ):
        customer.email_confirmed_at = utcnow()
        outbox.release_held(session, customer.email)
