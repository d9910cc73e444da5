"""What check-in answers when it cannot judge a scan: the scanner is not allowed (401), the
nonce names another scan (422), or what the scan needs is out of reach (503, no verdict: the gate
judges the ticket offline and uploads it later)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask_babel import gettext
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.i18n import N_
from app.models import Busy, DomainError

UNREACHABLE = N_(
    "Check-in cannot reach its database: judge the ticket offline and upload it later."
)


class Unavailable(Busy):
    """The database (or Redis) is unreachable and what the scan needs is not cached: no verdict
    on the ticket. The gate judges it offline and uploads it later."""

    code = "unavailable"


class NotAuthorized(DomainError):
    status = 401
    code = "not_authorized"


class NonceReused(DomainError):
    """A nonce sent again with another scan (as ``idempotency_key_reused`` for payments)."""

    code = "nonce_reused"


NONCE_REUSED = N_("This nonce was sent with another scan: send a new nonce for each scan.")


@contextmanager
def unavailable_without_database(session: Session) -> Iterator[None]:
    """The database unreachable where a scan needs it: roll back and answer Unavailable (503),
    never a verdict on the ticket."""
    try:
        yield
    except OperationalError as exc:
        session.rollback()
        raise Unavailable(gettext(UNREACHABLE)) from exc
