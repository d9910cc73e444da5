"""A partner's own system for the webhook tests: a real HTTP server on 127.0.0.1 (``http.server``
in a thread) that records every request it receives and answers what the test planned (200
unless told), and endpoints registered for a partner."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import update

from app.extensions import db
from app.models import DeliveryStatus, Partner, WebhookDelivery, WebhookEndpoint, WebhookKind
from app.models.base import utcnow

ALL_KINDS = [kind.value for kind in WebhookKind]


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def delivery_id(self) -> int:
        return int(self.headers["Bilheteria-Delivery"])

    @property
    def kind(self) -> str:
        return self.headers["Bilheteria-Event"]


def signature_is_valid(received: Received, secret: str, tolerance: float = 300) -> bool:
    """The receiver's check, written here as a partner would (not the app's code): one ``v1``
    is HMAC-SHA256 of "<t>.<raw body>" under the secret, and ``t`` is within 5 minutes."""
    parts = [part.split("=", 1) for part in received.headers["Bilheteria-Signature"].split(",")]
    timestamp = int(next(value for name, value in parts if name == "t"))
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + received.body, hashlib.sha256
    ).hexdigest()
    return any(hmac.compare_digest(expected, value) for name, value in parts if name == "v1")


class Receiver:
    """Every request received, in arrival order; the next answers are ``plan``ned (status, an
    optional body and headers, per path or for any), else 200 "ok"; ``delay`` seconds before
    each answer."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: dict[str | None, deque[tuple[int, str, dict[str, str]]]] = {}
        self.delay = 0.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, dict(self.headers.items()), body, time.time())
                    )
                    status, text, headers = receiver.answer(self.path)
                if receiver.delay:
                    time.sleep(receiver.delay)
                payload = text.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def plan(
        self,
        status: int,
        text: str = "",
        headers: dict[str, str] | None = None,
        *,
        path: str | None = None,
    ) -> None:
        """The next request (to ``path``, or to any path) gets this answer."""
        with self._lock:
            self.answers.setdefault(path, deque()).append((status, text, headers or {}))

    def answer(self, path: str) -> tuple[int, str, dict[str, str]]:
        """The planned answer for a request to ``path`` (under the lock): that path's first,
        else any path's, else 200 "ok"."""
        for planned in (self.answers.get(path), self.answers.get(None)):
            if planned:
                return planned.popleft()
        return 200, "ok", {}

    def to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait_for(
        self, count: int, path: str | None = None, timeout: float = 15.0
    ) -> list[Received]:
        """At least ``count`` requests (to ``path``), waiting for a sender in another thread or
        process; fails the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [r for r in self.received if path is None or r.path == path]
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"{len(found)} requests arrived, {count} awaited"
                return found
            time.sleep(0.02)

    def unique(self, path: str | None = None) -> list[Received]:
        """What a receiver that drops repeats by Bilheteria-Delivery processes: the first of
        each delivery id, in arrival order."""
        seen: set[int] = set()
        kept = []
        for received in self.to(path) if path else list(self.received):
            if received.delivery_id not in seen:
                seen.add(received.delivery_id)
                kept.append(received)
        return kept


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver._thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def endpoint(partner: Partner, url: str, kinds: list[str] | None = None) -> WebhookEndpoint:
    """An active endpoint of the partner at ``url``, for ``kinds`` (all by default)."""
    registered = WebhookEndpoint(partner_id=partner.id, url=url, kinds=kinds or ALL_KINDS)
    registered.check(allow_local_http=True)
    db.session.add(registered)
    db.session.commit()
    return registered


def deliveries(*where: Any) -> list[WebhookDelivery]:
    """The deliveries written (matching ``where``), oldest first, as the database has them."""
    db.session.expire_all()
    return list(
        db.session.scalars(db.select(WebhookDelivery).where(*where).order_by(WebhookDelivery.id))
    )


def row(delivery_id: int) -> WebhookDelivery:
    db.session.expire_all()
    found = db.session.get(WebhookDelivery, delivery_id)
    assert found is not None
    return found


def make_due(*delivery_ids: int) -> None:
    """The pause before the next attempt is over (rather than waiting for it)."""
    db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(delivery_ids))
        .values(next_attempt_at=utcnow() - dt.timedelta(seconds=1))
    )
    db.session.commit()


def lease_runs_out(*delivery_ids: int) -> None:
    """A claim's lease is over (rather than waiting five minutes)."""
    db.session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id.in_(delivery_ids),
            WebhookDelivery.status == DeliveryStatus.SENDING,
        )
        .values(claimed_until=utcnow() - dt.timedelta(seconds=1))
    )
    db.session.commit()
