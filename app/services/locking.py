"""Row locking for the purchase path: a short lock timeout per transaction, and lock failures
turned into a clear "busy, try again" instead of an error page (pretix's locking pattern)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.models.errors import Busy

# lock_not_available, deadlock_detected, serialization_failure
_RETRYABLE_SQLSTATES = {"55P03", "40P01", "40001"}


def set_lock_timeout(session: Session) -> None:
    """Bound how long this transaction waits for any row lock (PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        ms = int(current_app.config["LOCK_TIMEOUT_MS"])
        session.execute(text(f"SET LOCAL lock_timeout = '{ms}ms'"))


@contextmanager
def busy_on_lock_failure(session: Session) -> Iterator[None]:
    """Roll back and raise Busy when a lock cannot be had in time (or SQLite is locked)."""
    try:
        yield
    except OperationalError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate in _RETRYABLE_SQLSTATES or "database is locked" in str(exc.orig):
            session.rollback()
            raise Busy(
                "These seats are being changed by someone else right now: try again."
            ) from exc
        raise
