"""The app's psycopg cursor: its ``description`` makes the column objects only when someone reads
them.

psycopg builds a new ``Column`` for every column of the result each time ``description`` is
read (its name decoded, its type looked up). SQLAlchemy reads ``description`` after every
statement, only to learn whether rows came back, and then reads the columns themselves only
the first time it runs a statement (it keeps the result's shape with the compiled statement).
So every execution paid for columns nobody looked at: a 31-column row of the purchase path
cost 21 µs, and the whole purchase about 6% of the app's instructions (bench/purchase_cost.py
under callgrind: 20.7 against 19.5 million per order).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, overload

import psycopg
from psycopg import pq
from psycopg._column import Column

_ROWS = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.SINGLE_TUPLE, pq.ExecStatus.TUPLES_CHUNK)


class LazyDescription(Sequence[Column]):
    """A result's columns, as psycopg's ``Cursor.description`` lists them, made on first read
    from the result they describe (still right if the cursor has run another statement since).
    Its length and truth need no column."""

    __slots__ = ("_columns", "_reader", "_result")

    def __init__(self, cursor: psycopg.Cursor[Any], result: pq.abc.PGresult) -> None:
        self._result = result
        # What Column reads of its cursor, kept from the cursor as it was for this result.
        self._reader = SimpleNamespace(
            pgresult=result, _encoding=cursor._encoding, adapters=cursor.adapters
        )
        self._columns: list[Column] | None = None

    def __len__(self) -> int:
        return self._result.nfields

    @overload
    def __getitem__(self, index: int) -> Column: ...

    @overload
    def __getitem__(self, index: slice) -> list[Column]: ...

    def __getitem__(self, index: int | slice) -> Column | list[Column]:
        if self._columns is None:
            reader: Any = self._reader
            self._columns = [Column(reader, i) for i in range(self._result.nfields)]
        return self._columns[index]

    def __repr__(self) -> str:
        return repr(list(self))


class LazyDescriptionCursor(psycopg.Cursor[Any]):
    """psycopg's client-side cursor, with a ``description`` that makes its columns when read
    (LazyDescription); None when the statement returned no rows, as psycopg's own."""

    @property
    def description(self) -> LazyDescription | None:  # type: ignore[override]
        result = self.pgresult
        if not (result and (result.nfields or result.status in _ROWS)):  # as psycopg decides
            return None
        return LazyDescription(self, result)
