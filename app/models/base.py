"""Shared column helpers for the domain models."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import CheckConstraint


def utcnow() -> dt.datetime:
    """Naive UTC: every timestamp column stores UTC without an offset (SQLite has none)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def enum_check(column: str, values: type[enum.StrEnum], name: str) -> CheckConstraint:
    """A CHECK constraint limiting a string column to an enum's values."""
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name)


# Indexes the migrations create that SQLAlchemy cannot describe (PostgreSQL expression indexes):
# autogenerate must neither drop nor report them.
UNMANAGED_INDEXES = frozenset({"ix_event_search"})


def alembic_include_object(obj: object, name: str | None, type_: str, *_: object) -> bool:
    return not (type_ == "index" and name in UNMANAGED_INDEXES)
