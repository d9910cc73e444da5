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
