"""Row locking for the purchase path: lock failures turned into a clear "busy, try again" instead
of an error page (pretix's locking pattern). The short lock timeout itself is set on every
PostgreSQL connection (LOCK_TIMEOUT_MS, app/config.py), so no transaction waits long for a row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask_babel import gettext
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.i18n import N_
from app.models.errors import Busy

# lock_not_available, deadlock_detected, serialization_failure
_RETRYABLE_SQLSTATES = {"55P03", "40P01", "40001"}


SEATS_BUSY = N_("These seats are being changed by someone else right now: try again.")


@contextmanager
def busy_on_lock_failure(session: Session, message: str = SEATS_BUSY) -> Iterator[None]:
    """Roll back and raise Busy when a lock cannot be had in time (or a deadlock or
    serialization failure ended the transaction)."""
    try:
        yield
    except OperationalError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate in _RETRYABLE_SQLSTATES:
            session.rollback()
            raise Busy(gettext(message)) from exc
        raise
