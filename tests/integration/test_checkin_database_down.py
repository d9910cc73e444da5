"""Issue 5, point 4 ("Always available"): while an event is armed, the scan API answers from
Redis alone with PostgreSQL unreachable, and the scan log reaches the database once it is back,
nothing lost or doubled.

A second app talks to the real PostgreSQL through a TCP proxy that the test cuts (listener and
every forwarded connection closed) and restores; everything is checked through the normal test
database.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from app import create_app
from app.extensions import db
from app.models import CheckIn, CheckinEntry, Event
from app.models.base import utcnow
from app.services import checkin
from app.tasks import init_celery
from tests.conftest import config_for_tests
from tests.integration.test_purchase_api import card_token, pay, sign_up
from tests.support import PartnerActor, make_event, make_partner

REDIS_URL = os.environ.get("REDIS_URL")

pytestmark = [
    pytest.mark.skipif(not REDIS_URL, reason="needs Redis (REDIS_URL) for armed events"),
]


class PgProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL; ``cut`` closes the listener and every forwarded
    connection (connections are then refused at once), ``restore`` listens on the port again."""

    def __init__(self, upstream: tuple[str, int] | str) -> None:
        """``upstream``: PostgreSQL's (host, port), or the path of its Unix socket."""
        self.upstream = upstream
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._acceptor: threading.Thread | None = None

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._open)

    def restore(self) -> None:
        assert self._listener is None, "the proxy is already listening"
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.05)
        self._stop.clear()
        self._acceptor = threading.Thread(target=self._accept, args=(self._listener,), daemon=True)
        self._acceptor.start()

    def cut(self) -> None:
        if self._listener is None:
            return
        self._stop.set()
        assert self._acceptor is not None
        self._acceptor.join(timeout=5)
        self._listener.close()
        self._listener = None
        with self._lock:
            doomed = list(self._open)
        for sock in doomed:
            self._close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                downstream, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = _connect(self.upstream)
            except OSError:
                downstream.close()
                continue
            downstream.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._open.update((downstream, upstream))
            for src, dst in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(src)
            self._close(dst)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv()
        sock.close()


def _connect(upstream: tuple[str, int] | str) -> socket.socket:
    if isinstance(upstream, tuple):
        return socket.create_connection(upstream, timeout=2)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2)
    sock.connect(upstream)
    return sock


def upstream_of(url: URL) -> tuple[str, int] | str:
    """Where the database listens: a TCP address, or the Unix socket of a server named by a
    ``host`` directory in the query (the embedded PostgreSQL)."""
    socket_dir = url.query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        return f"{socket_dir}/.s.PGSQL.{url.query.get('port', url.port or 5432)}"
    return (url.host or "127.0.0.1", url.port or 5432)


@pytest.fixture
def proxy(app: Flask) -> Iterator[PgProxy]:
    pg = PgProxy(upstream_of(make_url(app.config["SQLALCHEMY_DATABASE_URI"])))
    pg.restore()
    yield pg
    pg.cut()


@pytest.fixture
def proxied(app: Flask, proxy: PgProxy) -> Iterator[Flask]:
    """A second app on the same database, through the proxy, sharing the suite's Redis."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    through_proxy = (
        url.difference_update_query(["host", "port"])
        .set(host="127.0.0.1", port=proxy.port)
        .update_query_dict({"connect_timeout": "2"})
    )
    options = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])  # the pool as configured
    second = create_app(
        config_for_tests(
            SQLALCHEMY_DATABASE_URI=through_proxy.render_as_string(hide_password=False),
            SQLALCHEMY_ENGINE_OPTIONS=options,
            REDIS_URL=REDIS_URL,
        )
    )
    try:
        yield second
    finally:
        with second.app_context():
            db.session.remove()
            db.engine.dispose()
        init_celery(app)  # create_app rebound the shared Celery app to the second app


@pytest.fixture
def ck_keys() -> Iterator[tuple[redis.Redis, set[str]]]:
    """The suite's Redis and the "ck:" keys this test makes, deleted afterwards. Scans queued by
    anything else are set aside meanwhile (the test flushes the whole queue) and put back."""
    cache = redis.Redis.from_url(REDIS_URL, socket_timeout=2, decode_responses=True)
    stash = f"ck:test-stash:{uuid.uuid4().hex}"
    if cache.exists(checkin.LOG_KEY):
        cache.rename(checkin.LOG_KEY, stash)
    keys: set[str] = {checkin.LOG_KEY}
    try:
        yield cache, keys
    finally:
        cache.delete(*(key for key in keys if key.startswith("ck:")))
        if cache.exists(stash):
            cache.rename(stash, checkin.LOG_KEY)
        cache.close()


def forge(code: str) -> str:
    """The same ticket with one byte of its signature (the last 64 bytes) flipped."""
    raw = bytearray(base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)))
    raw[-10] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def buy(client: Any, event: Event, quantity: int) -> list[dict[str, Any]]:
    headers = sign_up(client)
    hold = client.post(
        "/api/v1/holds/",
        json={"event_id": event.id, "section_id": event.sections[0].id, "quantity": quantity},
        headers=headers,
    )
    assert hold.status_code == 201, hold.get_json()
    order = pay(client, headers, hold.get_json()["result"]["id"], card_token(client))
    assert order.status_code == 201, order.get_json()
    tickets = order.get_json()["result"]["tickets"]
    assert len(tickets) == quantity
    return tickets


def test_an_armed_event_scans_with_the_database_cut_and_the_log_lands_once_it_is_back(
    app, client, proxy, proxied, ck_keys
):
    cache, keys = ck_keys
    partner = make_partner("Aurora")
    event = make_event(partner, rows=("A", "B"), seats=5)
    event.publish()
    event.checkin_opens_at = utcnow() - dt.timedelta(hours=1)
    event.checkin_closes_at = utcnow() + dt.timedelta(hours=3)
    db.session.commit()
    # Event ids restart with each test database: never trust what an earlier run left in Redis.
    event_keys = {f"ck:{kind}:{event.id}" for kind in ("ev", "en", "rv", "tk")}
    keys.update(event_keys)
    cache.delete(*event_keys)

    first, second, unused = buy(client, event, 3)
    device, token = checkin.register_device(
        db.session, PartnerActor(partner), "North 1", [event.id]
    )
    keys.add(f"ck:dev:{device.token_hash}")
    with proxied.app_context():
        assert db.engine.url.port == proxy.port
        assert checkin.arm_event(db.session, event.id)
        db.session.remove()
    assert db.session.scalar(select(Event.armed_at).where(Event.id == event.id)) is not None
    assert proxy.connections > 0  # the proxied app's pool is really connected through it

    scanner = proxied.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    nonces = [uuid.uuid4().hex for _ in range(4)]
    keys.update(f"ck:n:d{device.id}:{nonce}" for nonce in nonces)

    def scan(code: str, nonce: str, gate: str) -> dict[str, Any]:
        response = scanner.post(
            "/api/v1/checkin/scan",
            json={"code": code, "gate": gate, "direction": "in", "nonce": nonce},
            headers=auth,
        )
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        return response.get_json()

    proxy.cut()
    assert proxy.connections == 0
    with proxied.app_context():
        with pytest.raises(OperationalError):
            db.session.execute(text("SELECT 1"))
        db.session.remove()

    admitted = scan(first["code"], nonces[0], "North 1")
    assert admitted["result"] == "valid", admitted
    assert admitted["ticket_id"] == first["id"]
    assert admitted["seat"] == f"{first['section']} {first['spot']}"
    again = scan(first["code"], nonces[1], "South 2")
    assert again["result"] == "already_used", again
    assert again["first_scan"]["gate"] == "North 1"
    forged = scan(forge(first["code"]), nonces[2], "North 1")
    assert forged["result"] == "invalid" and forged["reason"] == "bad_signature", forged
    other = scan(second["code"], nonces[3], "South 2")
    assert other["result"] == "valid" and other["ticket_id"] == second["id"], other
    assert other["seat"] == f"{second['section']} {second['spot']}"
    assert scan(first["code"], nonces[0], "North 1") == admitted  # a retry: the same answer

    with proxied.app_context():
        with pytest.raises(OperationalError):  # it was down all along
            db.session.execute(text("SELECT 1"))
        db.session.remove()
        assert checkin.flush_scan_log(db.session) == 0
        db.session.remove()
    queued = cache.lrange(checkin.LOG_KEY, 0, -1)
    assert len(queued) == 4  # one per nonce, the retry not among them, none lost

    proxy.restore()
    with proxied.app_context():
        assert checkin.flush_scan_log(db.session) == 4
        db.session.remove()
    assert cache.llen(checkin.LOG_KEY) == 0

    def logged() -> dict[str, tuple[Any, ...]]:
        db.session.rollback()
        rows = db.session.scalars(select(CheckIn).where(CheckIn.event_id == event.id)).all()
        # Nonces are logged per scanner ("d<device id>:<nonce>").
        return {
            row.nonce.split(":", 1)[1]: (
                row.result,
                row.ticket_id,
                row.gate,
                row.device_id,
                row.direction,
            )
            for row in rows
        }

    expected = {
        nonces[0]: ("valid", first["id"], "North 1", device.id, "in"),
        nonces[1]: ("already_used", first["id"], "South 2", device.id, "in"),
        nonces[2]: ("invalid", None, "North 1", device.id, "in"),
        nonces[3]: ("valid", second["id"], "South 2", device.id, "in"),
    }
    assert logged() == expected
    assert db.session.scalar(select(func.count()).select_from(CheckIn)) == 4
    entries = {
        e.ticket_id: (e.state, e.first_gate)
        for e in db.session.scalars(select(CheckinEntry).where(CheckinEntry.event_id == event.id))
    }
    assert entries == {first["id"]: ("in", "North 1"), second["id"]: ("in", "South 2")}
    assert unused["id"] not in entries

    # Flushing again adds nothing, even if the queue is delivered twice (written, not trimmed).
    with proxied.app_context():
        assert checkin.flush_scan_log(db.session) == 0
        cache.rpush(checkin.LOG_KEY, *queued)
        assert checkin.flush_scan_log(db.session) == 4
        db.session.remove()
    assert logged() == expected
    assert db.session.scalar(select(func.count()).select_from(CheckIn)) == 4
    assert db.session.scalar(select(func.count()).select_from(CheckinEntry)) == 2
