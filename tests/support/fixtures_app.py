"""Plugin: the session's Redis and app on the tests' PostgreSQL; every test's app context,
emptied afterwards; the test client.

Redis is REDIS_URL's or, when that is unset, a redis-server on PATH started on a free port for
the session (nothing on disk); tests that need it skip with the reason otherwise. The database
starts only when the ``app`` fixture is first used (tests/support/database.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale
from sqlalchemy import text

from app import create_app
from app.extensions import db
from tests.support.apps import EnglishClient, IsolatedClient, config_for_tests
from tests.support.database import empty_domain_tables

_redis_server: subprocess.Popen[bytes] | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Without REDIS_URL, a redis-server on PATH is started for the session (nothing on disk)."""
    global _redis_server
    server = shutil.which("redis-server")
    if os.environ.get("REDIS_URL") or server is None:
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _redis_server = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    os.environ["REDIS_URL"] = url


def pytest_unconfigure(config: pytest.Config) -> None:
    if _redis_server is not None:
        _redis_server.terminate()
        _redis_server.wait(timeout=10)


@pytest.fixture(scope="session")
def app() -> Iterator[Flask]:
    from flask_migrate import upgrade

    from app.views.roles import sync_permissions

    app = create_app(config_for_tests())
    app.test_client_class = EnglishClient  # English unless a test asks otherwise
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        sync_permissions(app.appbuilder)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def db_context(app: Flask) -> Iterator[None]:
    """An app context for the test, in English (outside a request the app speaks its default,
    pt_BR: the tests read English messages); every domain row is deleted afterwards."""
    with app.app_context(), force_locale("en"):
        yield
        empty_domain_tables(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = IsolatedClient
    return app.test_client()


@pytest.fixture
def tasks_in_process() -> Iterator[None]:
    """Tasks run in this process, as the demo runs them, whatever broker the suite was given:
    the task sent after a commit (a mail, a report) runs at once, before the request answers."""
    from app.extensions import celery

    saved = celery.conf.task_always_eager
    celery.conf.task_always_eager = True
    yield
    celery.conf.task_always_eager = saved
