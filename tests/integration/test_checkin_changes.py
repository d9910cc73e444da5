"""What changes after an event is armed reaches its gates at once, and an outage answers "no
verdict" (503), never a wrong one (found by a review of gate check-in).

Armed events validate from Redis; these tests change the event, a user or a ticket in the
database after arming, and scan again.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest

from app.extensions import db
from app.models import Event
from app.models.base import utcnow
from app.services import checkin, refunds
from app.services import events as event_service
from app.services.checkin import arming
from app.services.payments import gateway
from app.services.scoping import SYSTEM
from tests.support.builders import PartnerActor, api_token, make_event, make_partner, make_user
from tests.support.database import forget_checkin_state
from tests.support.gate import device, result, scan
from tests.support.shop import buy
from tests.support.worker import needs_redis

pytestmark = pytest.mark.usefixtures("db_context")

REDIS_URL = os.environ.get("REDIS_URL")


@pytest.fixture
def redis_store(app):
    """Check-in validating from Redis for the test (as ``store``'s "redis" variant)."""
    saved = app.config.get("REDIS_URL")
    app.config["REDIS_URL"] = REDIS_URL
    yield
    forget_checkin_state(app)
    app.config["REDIS_URL"] = saved


def doors_open(partner, name="Show"):
    now = utcnow()
    event = make_event(partner, name, rows=("A", "B"), seats=5)
    event.starts_at = now + dt.timedelta(hours=1)
    event.ends_at = event.starts_at + dt.timedelta(hours=3)
    event.checkin_opens_at = now - dt.timedelta(hours=1)
    event.checkin_closes_at = now + dt.timedelta(hours=5)
    event.publish()
    db.session.commit()
    return event


def test_a_cancelled_event_admits_nobody_at_gates_that_armed_it(client, store, monkeypatch):
    partner = make_partner("Aurora")
    event = doors_open(partner)
    first, second = (t["code"] for t in buy(client, event, quantity=2)["tickets"])
    auth = device(partner, event)
    assert result(scan(client, auth, first))["result"] == "valid"  # armed (Redis store)
    # The refunds run later, in a task: the gates must not wait for them.
    monkeypatch.setattr(event_service, "enqueue", lambda *args: None)
    event_service.cancel_event(db.session, event.id, PartnerActor(partner), "storm")
    assert result(scan(client, auth, second))["result"] == "not_valid_now"
    manifest = client.get(f"/api/v1/checkin/events/{event.id}/manifest", headers=auth)
    assert manifest.get_json()["cancelled"] is True


def test_doors_closed_early_close_the_gates_that_armed_them(client, store):
    partner = make_partner("Aurora")
    event = doors_open(partner)
    first, second = (t["code"] for t in buy(client, event, quantity=2)["tickets"])
    auth = device(partner, event)
    assert result(scan(client, auth, first))["result"] == "valid"
    db.session.get(Event, event.id).checkin_closes_at = utcnow() - dt.timedelta(minutes=1)
    db.session.commit()
    assert result(scan(client, auth, second))["result"] == "not_valid_now"


@needs_redis
def test_the_arming_run_refreshes_an_armed_event_whatever_it_became(
    client, redis_store, monkeypatch
):
    """Redis missed the change (it was down when the partner saved): the next arming run puts
    the new doors in, though the event is no longer due."""
    partner = make_partner("Aurora")
    event = doors_open(partner)
    first, second = (t["code"] for t in buy(client, event, quantity=2)["tickets"])
    auth = device(partner, event)
    assert result(scan(client, auth, first))["result"] == "valid"
    monkeypatch.setattr(arming, "refresh_armed_event", lambda *args: None)  # Redis missed it
    db.session.get(Event, event.id).checkin_closes_at = utcnow() - dt.timedelta(minutes=1)
    db.session.commit()
    assert result(scan(client, auth, second))["result"] == "valid"  # stale until the run
    assert event.id in checkin.arm_due_events(db.session)
    third = buy(client, event, quantity=1)["tickets"][0]["code"]
    assert result(scan(client, auth, third))["result"] == "not_valid_now"


def test_a_deactivated_gate_user_scans_no_more(client, store):
    partner = make_partner("Aurora")
    event = doors_open(partner)
    first, second = (t["code"] for t in buy(client, event, quantity=2)["tickets"])
    gina = make_user("gina", "Gate", partner)
    checkin.assign_gate_user(db.session, PartnerActor(partner), gina.id, event.id)
    auth = api_token(client, "gina")
    assert result(scan(client, auth, first))["result"] == "valid"  # credentials cached
    db.session.merge(gina).active = False
    db.session.commit()
    assert scan(client, auth, second).status_code == 401
    assert client.get("/api/v1/checkin/events", headers=auth).status_code == 401


@needs_redis
def test_a_refund_committing_while_the_event_is_armed_reaches_the_gates(
    client, app, redis_store, monkeypatch
):
    partner = make_partner("Aurora")
    event = doors_open(partner)
    order = buy(client, event, quantity=1)
    auth = device(partner, event)
    read_details = arming.valid_ticket_details

    def refund_meanwhile(session, event_id, batch):  # arming has read the revoked tickets
        monkeypatch.setattr(arming, "valid_ticket_details", read_details)
        with app.app_context():
            refunds.refund_order(db.session, gateway(), order["id"], SYSTEM)
            db.session.remove()
        yield from read_details(session, event_id, batch)

    monkeypatch.setattr(arming, "valid_ticket_details", refund_meanwhile)
    checkin.arm_event(db.session, event.id)
    assert result(scan(client, auth, order["tickets"][0]["code"]))["result"] == "revoked"


@needs_redis
def test_with_redis_down_the_manifest_comes_from_the_database(client, app, redis_store):
    partner = make_partner("Aurora")
    event = doors_open(partner)
    code = buy(client, event, quantity=1)["tickets"][0]["code"]
    auth = device(partner, event)
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        assert result(scan(client, auth, code))["result"] == "valid"
        manifest = client.get(f"/api/v1/checkin/events/{event.id}/manifest", headers=auth)
        assert manifest.status_code == 200, manifest.get_json()
        assert [e["state"] for e in manifest.get_json()["entries"]] == ["in"]
    finally:
        app.config["REDIS_URL"] = REDIS_URL
        checkin.forget_fast_keys()


@needs_redis
def test_with_the_database_down_an_unknown_device_or_unarmed_event_gets_503(client, proxy, proxied):
    partner = make_partner("Aurora")
    armed, unarmed = doors_open(partner, "Armed"), doors_open(partner, "Not armed")
    armed_code = buy(client, armed, quantity=1)["tickets"][0]["code"]
    unarmed_code = buy(client, unarmed, quantity=1)["tickets"][0]["code"]
    known = device(partner, armed, unarmed, name="Known")
    with proxied.app_context():
        checkin.arm_event(db.session, armed.id)  # caches the known device too
        db.session.remove()
    late = device(partner, armed, name="Registered after arming")
    gate = proxied.test_client()
    proxy.cut()
    body = {"gate": "North", "direction": "in"}
    not_armed = gate.post(
        "/api/v1/checkin/scan",
        json={**body, "code": unarmed_code, "nonce": uuid.uuid4().hex},
        headers=known,
    )
    assert not_armed.status_code == 503, not_armed.get_json()  # no verdict, not "invalid"
    assert not_armed.get_json()["error"] == "unavailable"
    unknown_device = gate.post(
        "/api/v1/checkin/scan",
        json={**body, "code": armed_code, "nonce": uuid.uuid4().hex},
        headers=late,
    )
    assert unknown_device.status_code == 503, unknown_device.get_data(as_text=True)[:300]
    still = gate.post(
        "/api/v1/checkin/scan",
        json={**body, "code": armed_code, "nonce": uuid.uuid4().hex},
        headers=known,
    )
    assert result(still)["result"] == "valid"  # the armed event answers from Redis
