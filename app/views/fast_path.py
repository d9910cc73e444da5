"""What the WSGI fast paths share (checkin_fast.py, holds_fast.py): a layer in front of the app
that may answer one route's POST itself, from a bearer token and a small JSON body, before
Flask's per-request work; anything it does not answer goes to the app unchanged, with its body
intact. Answers given here are counted in the Prometheus request metrics under the route's own
endpoint, as the app would count them; they carry no request-id header."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from timeit import default_timer
from typing import Any

from flask import Flask
from sqlalchemy import Engine

from app.extensions import autocommit_engine
from app.observability import REQUEST_METRICS, RequestMetrics

# What the app's after_request hook (app/__init__.py, configure_headers) puts on a JSON answer.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "SAMEORIGIN"),
    (
        "Content-Security-Policy",
        "script-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'",
    ),
    ("Referrer-Policy", "same-origin"),
)


class FastPath:
    """Answers POST ``path`` when ``answer(token, body)`` returns (status line, JSON bytes);
    bodies over ``max_body`` bytes or without a length (chunked), and requests without a
    bearer token (when ``needs_token``: ``token`` is "" otherwise), go to the app, which holds
    each route to its size limit (413)."""

    path: str
    endpoint: str  # the app's endpoint for POST ``path``: its series in the request metrics
    max_body: int
    needs_token = True

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.metrics: RequestMetrics | None = app.extensions.get(REQUEST_METRICS)

    def answer(self, token: str, body: bytes, environ: dict[str, Any]) -> tuple[str, bytes] | None:
        raise NotImplementedError

    def autocommit_engine(self) -> Engine:
        """The app's engine in autocommit (extensions.autocommit_engine): a fast path's one
        statement is its own transaction, without a BEGIN and a COMMIT around it."""
        return autocommit_engine(self.app)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != self.path or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        header = environ.get("HTTP_AUTHORIZATION", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if (self.needs_token and not token) or not 0 < length <= self.max_body:
            return self.wsgi_app(environ, start_response)
        started = default_timer()
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # the app reads it again if it answers
        answered = self.answer(token, body, environ)
        if answered is None:
            return self.wsgi_app(environ, start_response)
        status, payload = answered
        if self.metrics is not None:
            self.metrics.observe("POST", self.endpoint, int(status[:3]), default_timer() - started)
        start_response(
            status,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                *SECURITY_HEADERS,
            ],
        )
        return [payload]

    @classmethod
    def install(cls, app: Flask) -> None:
        app.wsgi_app = cls(app, app.wsgi_app)  # type: ignore[method-assign]
