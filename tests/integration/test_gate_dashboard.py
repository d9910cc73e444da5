"""The partner's gate dashboard: devices (token shown once, revocable), gate staff, the scan log
and live entries, each limited to the partner's own events."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select

from app.extensions import db
from app.models import Event, GateAssignment, GateDevice
from app.models.base import utcnow
from app.services import checkin
from tests.support.builders import PartnerActor, login, make_partner, make_user
from tests.support.gate import open_event, result, scan
from tests.support.shop import buy


def _partner_login(client, username="alice", name="Aurora"):
    partner = make_partner(name)
    make_user(username, "Partner", partner)
    login(client, username)
    return partner


def test_a_partner_registers_a_device_and_sees_its_token_once(client):
    partner = _partner_login(client)
    event = open_event(partner)
    response = client.post(
        "/gatedeviceview/add",
        data={"name": "North phone", "events": [str(event.id)]},
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    token = re.search(r"enter it on the device\): ([\w-]+)", page).group(1)
    device = db.session.scalars(select(GateDevice)).one()
    assert device.partner_id == partner.id and device.token_hash != token
    assert token not in client.get(f"/gatedeviceview/show/{device.id}").get_data(as_text=True)
    # The token works at the gate.
    listed = client.get("/api/v1/checkin/events", headers={"Authorization": f"Bearer {token}"})
    assert [e["id"] for e in listed.get_json()["events"]] == [event.id]


def test_a_device_needs_a_name_and_an_event(client):
    _partner_login(client)
    response = client.post("/gatedeviceview/add", data={"name": "Phone", "events": []})
    assert "Choose at least one event" in response.get_data(as_text=True)
    assert db.session.scalars(select(GateDevice)).first() is None


def test_a_partner_cannot_see_revoke_or_pick_another_partners_devices_and_events(client):
    rival = make_partner("Rival")
    rival_event = open_event(rival, "Rival show")
    rival_device, _ = checkin.register_device(
        db.session, PartnerActor(rival), "Rival phone", [rival_event.id]
    )
    _partner_login(client)
    assert client.get(f"/gatedeviceview/show/{rival_device.id}").status_code == 404
    revoke = client.post(
        "/gatedeviceview/action_post", data={"action": "revoke", "rowid": [rival_device.id]}
    )
    assert revoke.status_code == 404
    db.session.expire_all()
    assert db.session.get(GateDevice, rival_device.id).revoked_at is None
    form = client.get("/gatedeviceview/add").get_data(as_text=True)
    assert "Rival show" not in form
    tampered = client.post(
        "/gatedeviceview/add", data={"name": "Spy", "events": [str(rival_event.id)]}
    )
    assert tampered.status_code in (200, 404)
    assert db.session.scalars(select(GateDevice).where(GateDevice.name == "Spy")).first() is None


def test_revoking_a_device_in_the_dashboard_refuses_it_at_once(client):
    partner = _partner_login(client)
    event = open_event(partner)
    device, token = checkin.register_device(db.session, PartnerActor(partner), "Lost", [event.id])
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/checkin/events", headers=auth).status_code == 200
    response = client.post(
        "/gatedeviceview/action_post",
        data={"action": "revoke", "rowid": [device.id]},
        follow_redirects=True,
    )
    assert "1 device(s) revoked" in response.get_data(as_text=True)
    assert client.get("/api/v1/checkin/events", headers=auth).status_code == 401


def test_a_partner_assigns_only_its_own_gate_users(client):
    partner = _partner_login(client)
    event = open_event(partner)
    gina = make_user("gina", "Gate", partner)
    outsider = make_user("otto", "Gate", make_partner("Rival"))
    form = client.get("/gateassignmentview/add").get_data(as_text=True)
    assert "Gina Test" in form and "Otto Test" not in form
    ok = client.post("/gateassignmentview/add", data={"user": str(gina.id), "event": str(event.id)})
    assert ok.status_code == 302
    refused = client.post(
        "/gateassignmentview/add", data={"user": str(outsider.id), "event": str(event.id)}
    )
    assert refused.status_code == 200
    assigned = db.session.scalars(select(GateAssignment.user_id)).all()
    assert assigned == [gina.id]


def test_the_scan_log_and_live_page_show_the_partners_own_scans(client):
    partner = make_partner("Aurora")
    event = open_event(partner)
    rival = make_partner("Rival")
    rival_event = open_event(rival, "Rival show")
    order = buy(client, event)
    rival_order = buy(client, rival_event)
    _, token = checkin.register_device(db.session, PartnerActor(partner), "North", [event.id])
    _, rival_token = checkin.register_device(
        db.session, PartnerActor(rival), "Rival gate", [rival_event.id]
    )
    auth = {"Authorization": f"Bearer {token}"}
    rival_auth = {"Authorization": f"Bearer {rival_token}"}
    assert result(scan(client, auth, order["tickets"][0]["code"], gate="North"))["result"] == (
        "valid"
    )
    result(scan(client, auth, order["tickets"][0]["code"], gate="South"))  # already used
    result(scan(client, rival_auth, rival_order["tickets"][0]["code"], gate="RivalGate"))
    checkin.flush_scan_log(db.session)
    make_user("alice", "Partner", partner)
    login(client, "alice")

    log_page = client.get("/checkinview/list/").get_data(as_text=True)
    assert "already_used" in log_page and "North" in log_page
    assert "RivalGate" not in log_page
    live = client.get(f"/checkinview/live/{event.id}")
    assert live.status_code == 200
    page = live.get_data(as_text=True)
    assert re.search(r"<td>North</td><td>1</td>", page)
    assert re.search(r"<td>already_used</td><td>1</td>", page)
    assert client.get(f"/checkinview/live/{rival_event.id}").status_code == 404


def test_check_in_must_close_after_it_opens(client):
    partner = _partner_login(client)
    event = open_event(partner)
    opens = utcnow() + dt.timedelta(days=1)
    response = client.post(
        f"/eventview/edit/{event.id}",
        data={
            "name": event.name,
            "venue": event.venue,
            "city": event.city,
            "starts_at": event.starts_at.strftime("%Y-%m-%dT%H:%M"),
            "currency": "BRL",
            "checkin_opens_at": opens.strftime("%Y-%m-%dT%H:%M"),
            "checkin_closes_at": (opens - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert "Check-in must close after it opens" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Event, event.id).checkin_closes_at != opens - dt.timedelta(hours=1)


def test_a_gate_user_sees_the_scan_log_but_cannot_register_devices(client):
    partner = make_partner("Aurora")
    make_user("gina", "Gate", partner)
    login(client, "gina")
    assert client.get("/checkinview/list/").status_code == 200
    assert client.get("/gatedeviceview/add").status_code in (302, 403)
