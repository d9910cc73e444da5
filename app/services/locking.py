"""Row locking for the purchase path: lock failures turned into a clear "busy, try again" instead
of an error page (pretix's locking pattern). The short lock timeout itself is set on every
PostgreSQL connection (LOCK_TIMEOUT_MS, app/config.py), so no transaction waits long for a row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.models.errors import Busy

# lock_not_available, deadlock_detected, serialization_failure
_RETRYABLE_SQLSTATES = {"55P03", "40P01", "40001"}


SEATS_BUSY = "These seats are being changed by someone else right now: try again."


@contextmanager
def busy_on_lock_failure(session: Session, message: str = SEATS_BUSY) -> Iterator[None]:
    """Roll back and raise Busy when a lock cannot be had in time (or SQLite is locked)."""
    try:
        yield
    except OperationalError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate in _RETRYABLE_SQLSTATES or "database is locked" in str(exc.orig):
            session.rollback()
            raise Busy(message) from exc
        raise


# A write that changes nothing (no hold has id -1), yet takes SQLite's write lock.
_NO_OP_WRITE = text("UPDATE hold SET id = id WHERE id = -1")


def sqlite_write_lock(conn: Connection) -> None:
    """On SQLite (the demo), take the database's write lock before reading what is about to be
    written: SQLite ignores FOR UPDATE and pysqlite reads outside a transaction until the first
    write, so two such transactions could both read the same rows free. Nothing elsewhere (the
    rows are locked by FOR UPDATE)."""
    if conn.dialect.name == "sqlite":
        conn.execute(_NO_OP_WRITE)
