"""Which database errors answer 503 (ask again) and which stay a 500 (a bug): seen when
PostgreSQL restarts behind PgBouncer (tests/cluster/test_database_restart.py)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors
from sqlalchemy.exc import DBAPIError, IntegrityError, InternalError, OperationalError

from app.views.errors import database_trouble


def Op(orig: Exception) -> OperationalError:  # noqa: N802 - reads as the class it makes
    return OperationalError("SELECT 1", {}, orig)


def Internal(orig: Exception) -> InternalError:  # noqa: N802
    return InternalError("COMMIT", {}, orig)


def Integrity(orig: Exception) -> IntegrityError:  # noqa: N802
    return IntegrityError("INSERT", {}, orig)


def Any(orig: Exception) -> DBAPIError:  # noqa: N802
    return DBAPIError("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (Op(errors.AdminShutdown("terminating connection")), "unavailable"),
        (Op(errors.ProtocolViolation("server login has been failing")), "unavailable"),
        (Op(errors.TooManyConnections("too many")), "unavailable"),
        (Op(errors.CannotConnectNow("starting up")), "unavailable"),
        (Op(psycopg.OperationalError("consuming input failed")), "unavailable"),
        # A COMMIT cut short by the restart: the driver received two results.
        (Internal(psycopg.InternalError("received 2 results")), "unavailable"),
        (Op(errors.LockNotAvailable("lock timeout")), "busy"),
        (Op(errors.QueryCanceled("statement timeout")), "busy"),
        (Integrity(errors.UniqueViolation("duplicate key")), None),
        (Internal(errors.RaiseException("a trigger refused")), None),
        (Any(errors.UndefinedColumn("no such column")), None),
        (ValueError("not the database's"), None),
    ],
)  # fmt: skip
def test_what_the_database_said_decides_503_or_500(
    error: BaseException, expected: str | None
) -> None:
    assert database_trouble(error) == expected
