"""The plan PostgreSQL keeps for a prepared statement when it plans without the parameters'
values (a generic plan): psycopg prepares a statement run often, and PostgreSQL may keep such a
plan from its sixth run. A partial index whose predicate the query binds as parameters, or a
LIMIT it estimates to stop early, can make that plan read far more than the first ones did."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import event

from app.extensions import db


def generic_plan(statement: Any, params: dict[str, Any]) -> str:
    """EXPLAIN of ``statement`` prepared on the server, with the plan PostgreSQL keeps for it
    when it plans without the parameters' values (plan_cache_mode force_generic_plan)."""
    compiled = statement.compile(dialect=db.engine.dialect)
    return generic_plan_of_text(compiled.string, compiled.construct_params(params))


def generic_plan_of_text(text: str, values: dict[str, Any]) -> str:
    """generic_plan of a statement as the app sent it to psycopg (``statements_run``): its
    text with %(name)s placeholders, and their values."""
    names: list[str] = []

    def positional(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    text = re.sub(r"%\((\w+)\)s", positional, text).replace("%%", "%")
    arguments = sql.SQL(", ").join(sql.Literal(values[name]) for name in names)
    with own_connection() as conn:
        conn.execute(sql.SQL("PREPARE best AS {}").format(sql.SQL(text)))
        conn.execute("SET plan_cache_mode = force_generic_plan")
        plan = conn.execute(sql.SQL("EXPLAIN EXECUTE best ({})").format(arguments)).fetchall()
    return "\n".join(row[0] for row in plan)


@contextmanager
def statements_run() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The statements the app runs inside the block (an executemany's left out), each as its
    text and parameters, as SQLAlchemy hands them to psycopg."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def record(_conn: Any, _cursor: Any, text: str, params: Any, _context: Any, many: bool) -> None:
        if not many:
            seen.append((text, dict(params or {})))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def generic_plans(seen: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str]]:
    """Each statement ``seen`` (``statements_run``) that has parameters, on one line, with its
    generic plan."""
    return [
        (" ".join(statement.split()), generic_plan_of_text(statement, params))
        for statement, params in seen
        if "%(" in statement
    ]


def whole_table_reads(plans: list[tuple[str, str]], tables: tuple[str, ...]) -> list[str]:
    """The sequential scans of ``tables`` in ``plans`` (``generic_plans``), each after its
    statement's first words. A statement with no WHERE (``SELECT ... LIMIT 1``) means to read
    whatever comes first, and is left out."""
    return [
        f"{statement[:90]}: {line.strip()}"
        for statement, plan in plans
        if " WHERE " in statement
        for line in plan.splitlines()
        if any(re.search(rf"Seq Scan on {table}\b", line) for table in tables)
    ]


def analyze(table: str) -> None:
    """Fresh statistics of ``table`` (a name of ours), as autovacuum would gather them."""
    with own_connection() as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


def own_connection() -> psycopg.Connection:
    """An autocommitted connection of its own to the app's database, closed after use: a pooled
    one would go back to the app's pool in autocommit, or holding the prepared statement."""
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(url, autocommit=True)
