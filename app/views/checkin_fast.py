"""The gate's fast path: a WSGI layer in front of the app that answers a device's scan of an
armed event in one Redis round trip (``services/checkin/fast_path.py``), without Flask's
per-request work. Anything else, staff logins, malformed requests, unknown devices, events not
armed yet, goes to the app unchanged, which answers it (and arms the event) the full way. Scans
answered here skip the Prometheus request metrics and the request-id header."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import Any

import redis
from flask import Flask

from app.services.checkin.fast_path import fast_scan
from app.services.checkin.redis_keys import redis_for

log = logging.getLogger(__name__)

SCAN_PATH = "/api/v1/checkin/scan"
MAX_BODY = 4096


class CheckinFastPath:
    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    def _client(self) -> redis.Redis | None:
        # Read each time: the setting decides (tests switch it between stores).
        url = self.app.config.get("REDIS_URL")
        return redis_for(url) if url else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != SCAN_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        client = self._client()
        header = environ.get("HTTP_AUTHORIZATION", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if client is None or not token or not 0 < length <= MAX_BODY:
            return self.wsgi_app(environ, start_response)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # the app reads it again if it answers
        try:
            answer = fast_scan(client, token, body)
        except redis.RedisError:
            log.warning("check-in fast path unavailable: Redis error", exc_info=True)
            answer = None
        if answer is None:
            return self.wsgi_app(environ, start_response)
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))],
        )
        return [answer]


def install(app: Flask) -> None:
    app.wsgi_app = CheckinFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
