"""Shared column helpers for the domain models."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, event
from sqlalchemy.orm import Mapper

from app.models.errors import DomainError


class OutOfRange(DomainError):
    """A value the column cannot hold (a time that leaves the calendar once in UTC)."""

    status = 400
    code = "out_of_range"


MAX_INT = 2**31 - 1  # integer columns, ids among them, are 32-bit on PostgreSQL


def utcnow() -> dt.datetime:
    """Naive UTC: every timestamp column stores UTC without an offset."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def as_naive_utc(value: Any) -> Any:
    """A datetime with an offset (an API's "2027-03-01T20:00:00-03:00") as the naive UTC the
    columns store; anything else unchanged."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _naive_utc_on_set(_target: Any, value: Any, _old: Any, initiator: Any) -> Any:
    try:
        return as_naive_utc(value)
    except OverflowError as exc:  # 0001-01-01T00:00+02:00 is before year 1 in UTC
        raise OutOfRange(
            f"{initiator.key} is outside the years 1 to 9999 in UTC.", field=initiator.key
        ) from exc


@event.listens_for(Mapper, "mapper_configured")
def _store_naive_utc(mapper: Mapper, class_: type) -> None:
    """Every timestamp column of every model takes an aware datetime as naive UTC when it is
    set, so the rules compare like with like (comparing naive and aware raises TypeError)."""
    for prop in mapper.column_attrs:
        if prop.parent is mapper and any(
            isinstance(c.type, DateTime) and not c.type.timezone for c in prop.columns
        ):
            event.listen(getattr(class_, prop.key), "set", _naive_utc_on_set, retval=True)


def enum_check(column: str, values: type[enum.StrEnum], name: str) -> CheckConstraint:
    """A CHECK constraint limiting a string column to an enum's values."""
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name)


# Indexes the migrations create that SQLAlchemy cannot describe (PostgreSQL expression indexes):
# autogenerate must neither drop nor report them.
UNMANAGED_INDEXES = frozenset({"ix_event_search"})


def alembic_include_object(obj: object, name: str | None, type_: str, *_: object) -> bool:
    return not (type_ == "index" and name in UNMANAGED_INDEXES)
