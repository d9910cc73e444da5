"""Issue 5, point 4 ("Always available"): while an event is armed, the scan API answers from
Redis alone with PostgreSQL unreachable, and the scan log reaches the database once it is back,
nothing lost or doubled.

A second app talks to the real PostgreSQL through a TCP proxy that the test cuts (listener and
every forwarded connection closed) and restores; everything is checked through the normal test
database.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.models import CheckIn, CheckinEntry, Event
from app.models.base import utcnow
from app.services import checkin
from tests.support.builders import PartnerActor, make_event, make_partner
from tests.support.gate import forged
from tests.support.shop import buy

REDIS_URL = os.environ.get("REDIS_URL")

pytestmark = [
    pytest.mark.skipif(not REDIS_URL, reason="needs Redis (REDIS_URL) for armed events"),
]


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

    first, second, unused = buy(client, event, 3)["tickets"]
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
    forgery = scan(forged(first["code"]), nonces[2], "North 1")
    assert forgery["result"] == "invalid" and forgery["reason"] == "bad_signature", forgery
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
