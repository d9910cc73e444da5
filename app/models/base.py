"""Shared helpers for the domain models: columns, and status changes (Transition)."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext
from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Table,
    Update,
    any_,
    event,
    inspect,
    literal,
    literal_column,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapper
from sqlalchemy.sql.elements import ColumnElement

from app.models.errors import Conflict, DomainError


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
            gettext("%(key)s is outside the years 1 to 9999 in UTC.", key=initiator.key),
            field=initiator.key,
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


def sql_literal(value: str) -> str:
    """A value of ours (an enum's) as an SQL string literal, for a constraint's or a partial
    index's text and the queries that must name it."""
    return "'" + value.replace("'", "''") + "'"


def sql_literals(values: Iterable[str]) -> str:
    """Values of ours as a list of SQL string literals, ``'a', 'b'``, for an IN or an ARRAY."""
    return ", ".join(map(sql_literal, values))


def literal_in(column: ColumnElement[Any], values: Iterable[str]) -> ColumnElement[bool]:
    """``column IN ('a', 'b')`` with the values written in the SQL, not bound: a partial index
    whose predicate names them is then usable by the generic plan PostgreSQL may keep for a
    prepared statement, planned without the parameters' values (bound, they hide the
    predicate, and that plan reads the whole table's index instead)."""
    return column.in_([literal_column(sql_literal(value)) for value in values])


def literal_is(column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
    """``column = 'value'`` with the value written in the SQL, for the same reason as
    ``literal_in``."""
    return column == literal_column(sql_literal(value))


def enum_check(column: str, values: type[enum.StrEnum], name: str) -> CheckConstraint:
    """A CHECK constraint limiting a string column to an enum's values."""
    return CheckConstraint(f"{column} IN ({sql_literals(v.value for v in values)})", name=name)


def any_of(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """``column = ANY(:values)``, the values bound as one array: ``IN (...)`` binds one parameter
    per value, and a statement binds at most 65,535 (fewer than a stadium has tickets)."""
    return column == any_(literal(list(values), ARRAY(column.type)))


@dataclass(frozen=True)
class Transition:
    """A status change of a model's rows, defined once on the model: the statuses it leaves
    from, the one it enters, the columns it writes (a value each) and those it empties. The
    model's method applies it to a loaded row (``apply``); the purchase path's Core statements
    are built from it (``update``): both leave from the same statuses and write the same columns.
    """

    sources: tuple[str, ...]
    target: str
    sets: tuple[str, ...] = ()
    clears: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Plain strings (not the enum members): what the status columns hold and the SQL binds.
        object.__setattr__(self, "sources", tuple(str(s) for s in self.sources))
        object.__setattr__(self, "target", str(self.target))

    def allows(self, status: str) -> bool:
        return status in self.sources

    def require(self, status: str, name: str) -> None:
        """Conflict unless a row in ``status`` may change so (``name`` says which row)."""
        if not self.allows(status):
            raise Conflict(
                gettext(
                    "%(name)s is %(status)s, not %(allowed)s.",
                    name=name,
                    status=status,
                    allowed=" or ".join(self.sources),
                )
            )

    def apply(self, row: Any, name: str, **values: Any) -> None:
        """Change a loaded row (``name`` for the Conflict when its status forbids it)."""
        self.require(row.status, name)
        self._check_written(values)
        row.status = self.target
        for column in self.clears:
            setattr(row, column, None)
        for column, value in values.items():
            setattr(row, column, value)

    def update(self, table: Table, *where: ColumnElement[bool], **values: Any) -> Update:
        """The change as one UPDATE of the rows ``where`` selects that are in a source status
        (others are left alone: the caller checks the row count); ``values`` are what the
        written columns take (bound parameters or expressions)."""
        self._check_written(values)
        status = table.c.status
        leaves = status == self.sources[0] if len(self.sources) == 1 else status.in_(self.sources)
        return (
            update(table)
            .where(*where, leaves)
            .values(status=self.target, **dict.fromkeys(self.clears), **values)
        )

    def _check_written(self, values: dict[str, Any]) -> None:
        if set(values) != set(self.sets):
            raise TypeError(f"this change writes {sorted(self.sets)}, not {sorted(values)}")


# Indexes the migrations create that SQLAlchemy cannot describe (PostgreSQL expression indexes):
# autogenerate must neither drop nor report them. ix_ab_user_username_lower: FAB's login looks
# a user up by lower(username); ix_customer_email_lower: sign-ups and ticket transfers look a
# customer up by lower(email).
UNMANAGED_INDEXES = frozenset(
    {"ix_event_search", "ix_ab_user_username_lower", "ix_customer_email_lower"}
)


def alembic_include_object(obj: object, name: str | None, type_: str, *_: object) -> bool:
    return not (type_ == "index" and name in UNMANAGED_INDEXES)


def listed_ids(ids: Iterable[int]) -> str:
    """Row ids as a message names them: "3, 5, 8"."""
    return ", ".join(str(i) for i in ids)


def changed_attributes(instance: Any) -> set[str]:
    """Names of the attributes changed on a persistent instance since it was loaded."""
    state = inspect(instance)
    if not state.persistent:
        return set()
    return {attr.key for attr in state.attrs if attr.history.has_changes()}
