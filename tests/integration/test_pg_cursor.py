"""The app's cursor describes a result only when its columns are read (app/pg_cursor.py): the
same description as psycopg's, and none made for a statement SQLAlchemy runs again. psycopg
converts a long query's placeholders once, as it does a short one's."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from psycopg import _column, _queries
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from app import pg_cursor
from app.extensions import db
from app.models import Event
from app.pg_cursor import LazyDescriptionCursor
from app.services.purchase import confirm

QUERY = "SELECT 1 AS id, 'Ana'::text AS name, now() AS at, 2.5::numeric(5, 2) AS price"


@pytest.fixture
def columns_made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The index of every column object psycopg makes from now on."""
    made: list[int] = []
    real = _column.Column.__init__

    def counted(self: Any, cursor: Any, index: int) -> None:
        made.append(index)
        real(self, cursor, index)

    monkeypatch.setattr(_column.Column, "__init__", counted)
    return made


def _raw() -> psycopg.Connection[Any]:
    return db.session.connection().connection.driver_connection


def test_the_apps_connections_use_the_lazy_cursor(app):
    with _raw().cursor() as cursor:
        assert isinstance(cursor, LazyDescriptionCursor)


def test_its_description_is_psycopgs_column_for_column(app):
    raw = _raw()
    with raw.cursor() as lazy, psycopg.Cursor(raw) as plain:
        lazy.execute(QUERY)
        plain.execute(QUERY)
        assert len(lazy.description) == 4 and bool(lazy.description)
        assert [tuple(c) for c in lazy.description] == [tuple(c) for c in plain.description]
        assert [c.name for c in lazy.description] == ["id", "name", "at", "price"]
        assert [tuple(c) for c in lazy.description[1:3]] == [
            tuple(c) for c in plain.description[1:3]
        ]
        lazy.execute("SET LOCAL statement_timeout = '5s'")  # no rows: no description
        plain.execute("SET LOCAL statement_timeout = '5s'")
        assert lazy.description is None and plain.description is None
        lazy.execute("SELECT FROM event WHERE false")  # rows of no columns: an empty one
        assert lazy.description is not None and len(lazy.description) == 0


def test_a_description_kept_describes_its_own_result_after_the_next_statement(app):
    with _raw().cursor() as cursor:
        cursor.execute(QUERY)
        first = cursor.description
        cursor.execute("SELECT 'x' AS other")
        assert [c.name for c in first] == ["id", "name", "at", "price"]
        assert [c.name for c in cursor.description] == ["other"]


def test_a_statement_run_again_makes_no_column(app, columns_made):
    statement = select(Event.id, Event.name, Event.status, Event.starts_at).limit(1)
    db.session.execute(statement).all()  # first run: SQLAlchemy reads the columns once
    columns_made.clear()
    for _ in range(3):
        db.session.execute(statement).all()
    assert columns_made == []
    with psycopg.Cursor(_raw()) as plain:  # psycopg's own cursor makes them at every read
        plain.execute(QUERY)
        assert plain.description is not None
    assert columns_made == [0, 1, 2, 3]


def test_a_long_query_with_many_parameters_is_converted_once(app):
    # Over psycopg's own limits (4,096 bytes, 50 parameters), as the sale's statement is.
    names = [f"p{n}" for n in range(80)]
    query = "SELECT " + ", ".join(f"%({name})s::int AS {name}_{'x' * 40}" for name in names)
    assert len(query) > 4096
    params = {name: n for n, name in enumerate(names)}
    with _raw().cursor() as cursor:
        cursor.execute(query, params)
        before = _queries._query2pg.cache_info()
        cursor.execute(query, params)
        after = _queries._query2pg.cache_info()
        assert cursor.fetchone()[79] == 79
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


@pytest.mark.parametrize("with_card", [False, True])
def test_the_sales_statement_is_within_the_cache_limits(with_card):
    """The longest statement of the purchase path stays a query psycopg converts once."""
    compiled = confirm._SALE_AT_ONCE[with_card].compile(dialect=postgresql.psycopg.dialect())
    sql = str(compiled).encode()
    assert len(sql) <= pg_cursor.LONGEST_QUERY_BYTES
    assert len(set(re.findall(rb"%\((\w+)\)s", sql))) <= pg_cursor.MOST_QUERY_PARAMETERS
