"""Error pages and JSON errors in the reader's language: werkzeug's own titles and
descriptions are English, so each status we answer has ours (a description given where the
error was raised, already translated there, is kept)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import psycopg
from flask import current_app, jsonify, render_template, request
from flask_appbuilder.api import BaseApi
from flask_babel import lazy_gettext
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, ServiceUnavailable, default_exceptions

from app.extensions import db

log = logging.getLogger(__name__)

# How long a client waits before asking again while the database is away (a restart, a
# failover): PgBouncer holds queries up to 10 s, a PostgreSQL restart takes a few.
RETRY_AFTER_SECONDS = 5

# status: (title, what the page says when the code that refused gave no reason)
HTTP_ERRORS = {
    400: (lazy_gettext("Bad request"), lazy_gettext("The request could not be understood.")),
    401: (lazy_gettext("Sign-in required"), lazy_gettext("Sign in to see this page.")),
    403: (lazy_gettext("Forbidden"), lazy_gettext("You may not see this page.")),
    404: (
        lazy_gettext("Page not found"),
        lazy_gettext(
            "There is nothing at this address. Check it, or start again from the home page."
        ),
    ),
    405: (
        lazy_gettext("Method not allowed"),
        lazy_gettext("This address does not take that method."),
    ),
    409: (lazy_gettext("Conflict"), lazy_gettext("The request conflicts with the current state.")),
    413: (lazy_gettext("Request too large"), lazy_gettext("The request body is too large.")),
    415: (
        lazy_gettext("Unsupported media type"),
        lazy_gettext("This address does not take that kind of body."),
    ),
    422: (
        lazy_gettext("Unprocessable request"),
        lazy_gettext("The request could not be processed."),
    ),
    429: (
        lazy_gettext("Too many requests"),
        lazy_gettext("Too many requests in a short time: wait a moment and try again."),
    ),
    500: (
        lazy_gettext("Something went wrong"),
        lazy_gettext("We could not answer this request. Try again in a moment."),
    ),
    503: (
        lazy_gettext("Service unavailable"),
        lazy_gettext("The service is busy or under maintenance. Try again in a moment."),
    ),
}


def texts(exc: HTTPException) -> tuple[str, str]:
    """The error's title and description in the reader's language."""
    code = exc.code or 500
    title, default = HTTP_ERRORS.get(code, (exc.name, exc.description))
    werkzeugs = getattr(default_exceptions.get(code), "description", None)
    described = exc.description and exc.description != werkzeugs
    return str(title), str(exc.description if described else default)


def http_error(exc: HTTPException, json_paths: tuple[str, ...]) -> Any:
    """API clients get JSON (its `error` code stays English: werkzeug's name), pages ours."""
    title, description = texts(exc)
    if request.path.startswith(json_paths):
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(error=code, message=description, status=exc.code), exc.code
    if exc.response is not None:
        return exc.response
    page = render_template(
        "error.html",
        code=exc.code,
        title=title,
        description=description,
        appbuilder=current_app.appbuilder,
    )
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    return page, exc.code, headers


# SQLSTATE classes of a database that cannot answer now: 08 connection exceptions (PgBouncer's
# "server login has been failing" too), 53 insufficient resources (too many connections), 57P
# an operator's or a crash's shutdown, a server starting up.
_UNAVAILABLE_STATES = ("08", "53", "57P")
# 55P03 lock_not_available, 57014 query_canceled (a statement timeout): up, but busy.
_BUSY_STATES = ("55P03", "57014")


def database_trouble(exc: BaseException) -> str | None:
    """``busy`` or ``unavailable`` when ``exc`` says the database could not answer now (a
    request may be asked again), None for any other error (a bug: 500)."""
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if sqlstate in _BUSY_STATES:
        return "busy"
    if sqlstate.startswith(_UNAVAILABLE_STATES) or exc.connection_invalidated:
        return "unavailable"
    # The driver's own failures, with no answer of the server to go by: a connection lost or
    # refused, a reply it could not make sense of (a COMMIT cut short answers twice).
    if not sqlstate and isinstance(
        orig, psycopg.OperationalError | psycopg.InterfaceError | psycopg.InternalError
    ):
        return "unavailable"
    return None


def database_unavailable(exc: DBAPIError, json_paths: tuple[str, ...]) -> Any:
    """The database could not answer (down, restarting, a connection cut, PgBouncer giving up
    on a server) or a lock or statement timeout escaped the service that should have turned it
    into Busy: 503 with Retry-After, never 500; a client asks again (a checkout with its
    Idempotency-Key, so a payment whose COMMIT was cut short is answered, not made twice). The
    transaction is rolled back (the unit of work is one transaction: nothing half done). Any
    other database error is raised again (a bug: 500)."""
    trouble = database_trouble(exc)
    if trouble is None:
        raise exc
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the link is gone: the rollback cannot reach it either
        log.debug("rollback after a database error failed", exc_info=True)
    log.warning("database %s: %s: %s", trouble, type(exc.orig).__name__, str(exc.orig)[:200])
    error = ServiceUnavailable(retry_after=RETRY_AFTER_SECONDS)
    if request.path.startswith(json_paths):
        _, description = texts(error)
        response = jsonify(error=trouble, message=description, status=503)
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return http_error(error, json_paths)


_fab_response_500 = BaseApi.response_500


def answer_503_when_the_database_is_away(json_paths: tuple[str, ...]) -> None:
    """FAB's API views (``@safe``) turn any exception into 500 before Flask's error handlers
    see it, while still handling it: their 500 becomes ``database_unavailable``'s 503 when the
    exception being handled is the database's."""

    def response_500(self: BaseApi, message: str | None = None) -> Any:
        exc = sys.exc_info()[1]
        if exc is not None and database_trouble(exc) is not None:
            return database_unavailable(exc, json_paths)  # type: ignore[arg-type]
        return _fab_response_500(self, message)

    BaseApi.response_500 = response_500  # type: ignore[method-assign]
