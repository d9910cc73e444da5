"""The app's psycopg cursor: its ``description`` makes the column objects only when someone reads
them. And psycopg's cache of converted queries, widened to the app's longest statements.

psycopg builds a new ``Column`` for every column of the result each time ``description`` is
read (its name decoded, its type looked up). SQLAlchemy reads ``description`` after every
statement, only to learn whether rows came back, and then reads the columns themselves only
the first time it runs a statement (it keeps the result's shape with the compiled statement).
So every execution paid for columns nobody looked at: a 31-column row of the purchase path
cost 21 µs, and the whole purchase about 5% of the app's instructions (bench/purchase_cost.py
under callgrind: 20.7 against 19.7 million per order).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, overload

import psycopg
from psycopg import _queries, pq
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


# psycopg keeps a query's conversion (its %(name)s placeholders turned into $1, $2...) only for
# queries of at most 4,096 bytes and 50 parameters; a longer one is parsed again, with a regular
# expression, at every execution. The sale's one statement (purchase/confirm.py: capture, spots,
# tickets, order, hold, webhooks, confirmation mail and ledger posting) has 64 parameters in
# 4.9 kB: parsed at every sale, it cost 0.75 million of the app's 20 million instructions per
# order. The limits are raised only that far, with room: psycopg keeps 128 queries, and a
# statement whose text varies (an expanding IN, a multi-row insert) should not push the hot ones
# out (tests/integration/test_pg_cursor.py holds the sale's statement within them).
LONGEST_QUERY_BYTES = 8_192
MOST_QUERY_PARAMETERS = 96


def keep_long_queries_converted() -> None:
    """Let psycopg keep the conversion of queries up to LONGEST_QUERY_BYTES with up to
    MOST_QUERY_PARAMETERS (settings of the process, read at each execution; setting them
    again changes nothing)."""
    _queries.MAX_CACHED_STATEMENT_LENGTH = max(
        _queries.MAX_CACHED_STATEMENT_LENGTH, LONGEST_QUERY_BYTES
    )
    _queries.MAX_CACHED_STATEMENT_PARAMS = max(
        _queries.MAX_CACHED_STATEMENT_PARAMS, MOST_QUERY_PARAMETERS
    )
