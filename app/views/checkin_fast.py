"""The gate's fast path: a WSGI layer in front of the app that answers a device's scan of an
armed event in one Redis round trip and one database write (``services/checkin/fast_path.py``),
without Flask's per-request work. Anything else, staff logins, malformed requests, unknown
devices, events not armed yet, goes to the app unchanged, which answers it (and arms the event)
the full way; so does every scan while this node owes Redis the entries it took from the
database during an outage (``services/checkin/catch_up.py``). Scans answered here skip the
Prometheus request metrics and the request-id header."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask
from sqlalchemy import Engine

from app.extensions import db
from app.services.checkin import catch_up
from app.services.checkin.fast_path import fast_scan
from app.services.checkin.redis_keys import redis_for
from app.views.fast_path import FastPath
from app.views.guards import SCAN_BODY_LIMIT

log = logging.getLogger(__name__)


class CheckinFastPath(FastPath):
    path = "/api/v1/checkin/scan"
    endpoint = "CheckinApi.scan"
    max_body = SCAN_BODY_LIMIT  # a larger scan goes to the app, which answers 413
    _engine: Engine | None = None

    def answer(self, token: str, body: bytes, environ: dict[str, Any]) -> tuple[str, bytes] | None:
        # Read each time: the setting decides (tests switch it between stores).
        url = self.app.config.get("REDIS_URL")
        if not url or catch_up.owes(self.app):
            return None
        try:
            answer = fast_scan(redis_for(url), token, body, self._database())
        except redis.RedisError:
            log.warning("check-in fast path unavailable: Redis error", exc_info=True)
            return None
        return ("200 OK", answer) if answer is not None else None

    def _database(self) -> Engine:
        """The app's engine (its pool), looked up once."""
        if self._engine is None:
            with self.app.app_context():
                self._engine = db.engine
        return self._engine


def install(app: Flask) -> None:
    CheckinFastPath.install(app)
