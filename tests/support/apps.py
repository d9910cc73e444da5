"""The app as the tests configure it: the test configuration, a second app on the same database
(other settings), and a test client whose requests each run in their own app context."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from flask import Flask, has_app_context
from flask.testing import FlaskClient

from app import create_app
from app.extensions import db
from tests.support.database import database_url_for_tests


def config_for_tests(**extra: Any) -> dict[str, Any]:
    return {
        "APP_ENV": "test",
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url_for_tests(),
        "WTF_CSRF_ENABLED": False,
        "FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",
        "RATELIMIT_ENABLED": False,
        **extra,
    }


@contextlib.contextmanager
def another_app(app: Flask, **config: Any) -> Iterator[Flask]:
    """An app with ``config`` over the test configuration, on the same database. Building an
    app replaces the root log handler and rebinds Celery's task class: both are put back for
    the session's ``app`` afterwards."""
    from app.tasks import init_celery

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    other = create_app(config_for_tests(**config))
    other.test_client_class = EnglishClient
    try:
        yield other
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        init_celery(app)
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


class EnglishClient(FlaskClient):
    """A client whose requests ask for English (Accept-Language: en) unless a test sends its own
    header: most tests read English texts; the language tests ask for pt-BR, or nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environ_base.setdefault("HTTP_ACCEPT_LANGUAGE", "en")


class IsolatedClient(EnglishClient):
    """Each request runs in its own app context (its own ``g`` and database session), as in
    production; the test's session then ends its transaction so it reads what the request wrote."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        if has_app_context():
            db.session.rollback()
            db.session.expire_all()  # rollback expires nothing when no transaction was open
        return response
