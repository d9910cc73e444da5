"""Pooled connections are checked only after sitting idle (DB_PING_IDLE_SECONDS): one the
database dropped meanwhile is replaced before a request uses it, and a connection used moments
ago is not pinged again."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError

from app import extensions
from tests.support.clock import Clock


@pytest.fixture
def engine(app, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(extensions.time, "monotonic", clock)
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], pool_size=1, max_overflow=0)
    extensions.ping_idle_connections(engine, 10)
    engine.clock = clock
    yield engine
    engine.dispose()


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _terminate(app, pid: int) -> None:
    other = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=None)
    with other.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()


def test_a_connection_dropped_while_idle_is_replaced_before_use(app, engine):
    first = _backend_pid(engine)
    _terminate(app, first)
    engine.clock.now += 11
    assert _backend_pid(engine) != first  # no error: the dead connection was replaced


def test_a_connection_used_moments_ago_is_not_pinged(app, engine):
    _backend_pid(engine)
    pings: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: pings.append(a[2]))
    engine.clock.now += 5
    _backend_pid(engine)
    assert pings == ["SELECT pg_backend_pid()"]


def test_without_the_idle_check_a_dropped_connection_fails_the_request(app, engine):
    """What the check prevents: the same drop, found by the request itself."""
    first = _backend_pid(engine)
    _terminate(app, first)
    engine.clock.now += 5  # not idle long enough to be checked
    with pytest.raises(SQLAlchemyError):
        _backend_pid(engine)
