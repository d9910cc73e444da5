"""Gate check-in: the scan API answers every case, once per nonce, and logs every scan; devices
and gate staff see only their partner's events. Each test runs on both stores: the database
(embedded default) and Redis (an armed event), when Redis is configured."""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import CheckIn, CheckinEntry, Event, ScanResult
from app.models.base import utcnow
from app.services import checkin, refunds
from app.services.payments import gateway
from app.services.scoping import SYSTEM
from tests.integration.test_purchase_api import card_token, pay, sign_up
from tests.support import PartnerActor, api_token, make_event, make_partner, make_user


@pytest.fixture(params=["database", "redis"])
def store(request, app):
    """Run the test with check-in validating from the database, then from Redis."""
    url = os.environ.get("REDIS_URL") if request.param == "redis" else None
    if request.param == "redis" and not url:
        pytest.skip("needs Redis; set REDIS_URL")
    saved = app.config.get("REDIS_URL")
    app.config["REDIS_URL"] = url
    app.extensions.pop("checkin_redis", None)
    yield request.param
    if url:
        with app.app_context():
            client = checkin.redis_client()
            keys = list(client.scan_iter("ck:*"))
            if keys:
                client.delete(*keys)
    app.config["REDIS_URL"] = saved
    app.extensions.pop("checkin_redis", None)


def open_event(partner, name="Concert", **fields):
    now = utcnow()
    fields.setdefault("checkin_opens_at", now - dt.timedelta(hours=1))
    fields.setdefault("checkin_closes_at", now + dt.timedelta(days=1))
    event = make_event(partner, name, rows=("A", "C"), seats=10, **fields)
    event.publish()
    db.session.commit()
    return event


@pytest.fixture
def partner():
    return make_partner("Aurora")


@pytest.fixture
def event(partner):
    return open_event(partner)


def buy(client, event, email="ana@example.com", quantity=2):
    """A real purchase through the API; returns the order JSON (tickets with their codes)."""
    headers = sign_up(client, email, email.split("@")[0].capitalize() + " Souza")
    hold = client.post(
        "/api/v1/holds/",
        json={"event_id": event.id, "section_id": event.sections[0].id, "quantity": quantity},
        headers=headers,
    )
    assert hold.status_code == 201, hold.get_json()
    paid = pay(client, headers, hold.get_json()["result"]["id"], card_token(client))
    assert paid.status_code == 201, paid.get_json()
    return paid.get_json()["result"]


def device(partner, *events, name="North 1"):
    _, token = checkin.register_device(
        db.session, PartnerActor(partner), name, [e.id for e in events]
    )
    return {"Authorization": f"Bearer {token}"}


def scan(client, auth, code, gate="North", direction="in", nonce=None, **extra):
    body = {"code": code, "gate": gate, "direction": direction, "nonce": nonce or uuid.uuid4().hex}
    return client.post("/api/v1/checkin/scan", json={**body, **extra}, headers=auth)


def result(response):
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def logged() -> list[CheckIn]:
    """The scan log as the database has it (Redis-queued scans flushed first)."""
    checkin.flush_scan_log(db.session)
    db.session.expire_all()
    return list(db.session.scalars(select(CheckIn).order_by(CheckIn.id)))


def forged(code: str) -> str:
    flipped = "A" if code[-5] != "A" else "B"
    return code[:-5] + flipped + code[-4:]


def test_a_ticket_is_admitted_once_then_answers_already_used(client, store, partner, event):
    order = buy(client, event)
    ticket = order["tickets"][0]
    auth = device(partner, event)

    first = result(scan(client, auth, ticket["code"], gate="North"))
    assert first["result"] == "valid"
    assert first["ticket_id"] == ticket["id"]
    assert first["section"] == ticket["section"] and ticket["spot"] in first["seat"]
    assert first["holder_name"] == "Ana Souza"

    again = result(scan(client, auth, ticket["code"], gate="South"))
    assert again["result"] == "already_used"
    assert again["first_scan"]["gate"] == "North"
    assert again["first_scan"]["at"].endswith("Z")

    rows = logged()
    assert [(r.result, r.gate, r.ticket_id) for r in rows] == [
        ("valid", "North", ticket["id"]),
        ("already_used", "South", ticket["id"]),
    ]
    assert all(r.device_id is not None and r.event_id == event.id for r in rows)
    entry = db.session.get(CheckinEntry, ticket["id"])
    assert entry.first_gate == "North" and entry.state == "in"


def test_forged_and_malformed_codes_are_invalid_and_logged(client, store, partner, event):
    ticket = buy(client, event)["tickets"][0]
    auth = device(partner, event)
    bad_signature = result(scan(client, auth, forged(ticket["code"])))
    assert bad_signature == {"result": "invalid", "reason": "bad_signature"}
    malformed = result(scan(client, auth, "not-a-ticket"))
    assert malformed == {"result": "invalid", "reason": "malformed"}
    # The genuine ticket is still unused: a forgery did not take its entry.
    assert result(scan(client, auth, ticket["code"]))["result"] == "valid"
    rows = logged()
    assert [(r.result, r.ticket_id) for r in rows] == [
        ("invalid", None),
        ("invalid", None),
        ("valid", ticket["id"]),
    ]


def test_a_retry_with_the_same_nonce_answers_the_same_and_records_once(
    client, store, partner, event
):
    ticket = buy(client, event)["tickets"][0]
    auth = device(partner, event)
    nonce = uuid.uuid4().hex
    first = result(scan(client, auth, ticket["code"], nonce=nonce))
    retry = result(scan(client, auth, ticket["code"], nonce=nonce, gate="Elsewhere"))
    assert first["result"] == "valid" and retry == first
    assert len(logged()) == 1


def test_a_refunded_ticket_answers_revoked(client, store, partner, event):
    kept = buy(client, event)
    refunded = buy(client, event, "bia@example.com")
    auth = device(partner, event)
    # The first scan arms the event (Redis): the refund must reach an armed gate too.
    assert result(scan(client, auth, kept["tickets"][0]["code"]))["result"] == "valid"
    refunds.refund_order(db.session, gateway(), refunded["id"], SYSTEM)
    answer = result(scan(client, auth, refunded["tickets"][0]["code"]))
    assert answer["result"] == "revoked"
    manifest = client.get(f"/api/v1/checkin/events/{event.id}/manifest", headers=auth)
    assert sorted(manifest.get_json()["revoked"]) == sorted(t["id"] for t in refunded["tickets"])


def test_another_events_ticket_answers_wrong_event(client, store, partner, event):
    other = open_event(partner, "Matinee")
    ticket = buy(client, other)["tickets"][0]
    auth = device(partner, event)
    answer = result(scan(client, auth, ticket["code"]))
    assert answer["result"] == "wrong_event"
    [row] = logged()
    # Logged under the gate's own event, without naming the other event's ticket.
    assert (row.event_id, row.ticket_id, row.result) == (event.id, None, "wrong_event")


def test_outside_the_check_in_window_answers_not_valid_now(client, store, partner):
    later = open_event(
        partner,
        checkin_opens_at=utcnow() + dt.timedelta(days=2),
        checkin_closes_at=utcnow() + dt.timedelta(days=3),
    )
    ticket = buy(client, later)["tickets"][0]
    answer = result(scan(client, device(partner, later), ticket["code"]))
    assert answer["result"] == "not_valid_now"
    assert answer["opens_at"].endswith("Z")
    assert db.session.get(CheckinEntry, ticket["id"]) is None


def test_a_revoked_device_is_refused_at_once(client, store, partner, event):
    ticket = buy(client, event)["tickets"][0]
    gate_device, token = checkin.register_device(
        db.session, PartnerActor(partner), "Lost phone", [event.id]
    )
    auth = {"Authorization": f"Bearer {token}"}
    assert result(scan(client, auth, ticket["code"]))["result"] == "valid"
    checkin.revoke_device(db.session, PartnerActor(partner), gate_device.id)
    refused = scan(client, auth, ticket["code"])
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "not_authorized"
    assert client.get("/api/v1/checkin/events", headers=auth).status_code == 401


def test_a_partner_cannot_register_a_device_for_another_partners_event(partner, event):
    from app.models import NotFound

    rival = make_partner("Rival")
    with pytest.raises(NotFound):
        checkin.register_device(db.session, PartnerActor(rival), "Spy", [event.id])


def test_gate_staff_scan_only_the_events_they_are_assigned(client, store, partner, event):
    other = open_event(partner, "Matinee")
    ticket = buy(client, event)["tickets"][0]
    gate_user = make_user("gina", "Gate", partner)
    checkin.assign_gate_user(db.session, PartnerActor(partner), gate_user.id, event.id)
    auth = api_token(client, "gina")

    listed = client.get("/api/v1/checkin/events", headers=auth).get_json()["events"]
    assert [e["id"] for e in listed] == [event.id]
    assert result(scan(client, auth, ticket["code"]))["result"] == "valid"
    assert (
        client.get(f"/api/v1/checkin/events/{other.id}/manifest", headers=auth).status_code == 404
    )
    [row] = logged()
    assert row.user_id == gate_user.id and row.device_id is None


def test_a_customer_login_cannot_scan(client, store, event):
    ticket = buy(client, event)["tickets"][0]
    customer = sign_up(client, "carla@example.com", "Carla")
    refused = scan(client, customer, ticket["code"])
    assert refused.status_code == 401
    assert scan(client, {}, ticket["code"]).status_code == 401


@pytest.mark.parametrize("reentry", [False, True])
def test_re_entry_lets_an_out_scan_allow_one_later_in(client, store, partner, reentry):
    event = open_event(partner, allow_reentry=reentry)
    code = buy(client, event)["tickets"][0]["code"]
    auth = device(partner, event)
    answers = [
        result(scan(client, auth, code, direction=direction))["result"]
        for direction in ("in", "out", "in", "in")
    ]
    if reentry:
        assert answers == ["valid", "valid", "valid", "already_used"]
    else:
        assert answers == ["valid", "valid", "already_used", "already_used"]


def test_an_out_scan_of_a_ticket_that_never_entered_is_refused(client, store, partner, event):
    code = buy(client, event)["tickets"][0]["code"]
    answer = result(scan(client, device(partner, event), code, direction="out"))
    assert answer == {**answer, "result": "invalid", "reason": "not_checked_in"}


def test_offline_scans_admit_the_first_and_report_later_duplicates_as_conflicts(
    client, store, partner, event
):
    order = buy(client, event)
    first_code, second_code = (t["code"] for t in order["tickets"])
    north, south = device(partner, event, name="North"), device(partner, event, name="South")
    early = (utcnow() - dt.timedelta(minutes=10)).isoformat() + "Z"
    late = (utcnow() - dt.timedelta(minutes=5)).isoformat() + "Z"
    north_scans = [
        {"code": first_code, "gate": "North", "direction": "in", "nonce": "north-0001",
         "scanned_at": early, "verdict": "valid"},
        {"code": second_code, "gate": "North", "direction": "in", "nonce": "north-0002",
         "scanned_at": late, "verdict": "valid"},
    ]  # fmt: skip
    south_scans = [
        {"code": first_code, "gate": "South", "direction": "in", "nonce": "south-0001",
         "scanned_at": late, "verdict": "valid"},
    ]  # fmt: skip
    up = client.post("/api/v1/checkin/offline-scans", json={"scans": north_scans}, headers=north)
    assert up.status_code == 200, up.get_json()
    assert [r["result"] for r in up.get_json()["results"]] == ["valid", "valid"]
    down = client.post("/api/v1/checkin/offline-scans", json={"scans": south_scans}, headers=south)
    assert down.get_json()["results"] == [
        {"nonce": "south-0001", "result": "already_used", "conflict": True}
    ]
    # Uploading again (the network dropped before the answer) records nothing new.
    again = client.post("/api/v1/checkin/offline-scans", json={"scans": south_scans}, headers=south)
    assert again.get_json() == down.get_json()
    rows = logged()
    assert len(rows) == 3
    assert [(r.nonce, r.conflict, r.offline) for r in rows if r.conflict] == [
        ("south-0001", True, True)
    ]
    # The gate staff then scans online: both tickets are inside already.
    online = result(scan(client, north, second_code))
    assert online["result"] == "already_used"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"gate": "North", "nonce": "n-12345678"}, "code"),
        ({"code": "x", "nonce": "n-12345678"}, "gate"),
        ({"code": "x", "gate": "North"}, "nonce"),
        ({"code": "x", "gate": "North", "nonce": "n-12345678", "direction": "up"}, "direction"),
        ({"code": "x", "gate": "North", "nonce": "n-12345678", "scanned_at": "yesterday"},
         "scanned_at"),
    ],
)  # fmt: skip
def test_a_malformed_scan_names_the_field(client, partner, event, body, field):
    response = client.post("/api/v1/checkin/scan", json=body, headers=device(partner, event))
    assert response.status_code == 422
    assert response.get_json()["field"] == field


def test_the_manifest_carries_the_key_window_and_entries(client, store, partner, event):
    ticket = buy(client, event)["tickets"][0]
    auth = device(partner, event)
    result(scan(client, auth, ticket["code"], gate="East"))
    manifest = client.get(f"/api/v1/checkin/events/{event.id}/manifest", headers=auth).get_json()
    assert manifest["public_key"] == db.session.get(Event, event.id).public_key
    assert manifest["allow_reentry"] is False and manifest["revoked"] == []
    assert [(e["ticket_id"], e["state"], e["gate"]) for e in manifest["entries"]] == [
        (ticket["id"], "in", "East")
    ]


@pytest.mark.postgres
def test_two_gates_scanning_the_same_ticket_at_once_admit_it_once(
    client, store, app, partner, event
):
    """Real connections from many threads, each a gate scanning the same ticket at once."""
    code = buy(client, event)["tickets"][0]["code"]
    _, token = checkin.register_device(db.session, PartnerActor(partner), "Lane", [event.id])
    # Arm the event first (Redis) so that the race is on the entry, not on arming.
    with app.app_context():
        scanner = checkin.scanner_for_token(db.session, token)
        if store == "redis":
            checkin.arm_event(db.session, event.id)
    answers: list[str] = []
    barrier = threading.Barrier(16)

    def gate(n: int) -> None:
        with app.app_context():
            request = checkin.parse_scan(
                {"code": code, "gate": f"Lane {n}", "nonce": uuid.uuid4().hex}
            )
            barrier.wait()
            answers.append(checkin.scan(db.session, scanner, request)["result"])
            db.session.remove()

    threads = [threading.Thread(target=gate, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers).count(ScanResult.VALID) == 1
    assert answers.count(ScanResult.ALREADY_USED) == 15
    checkin.flush_scan_log(db.session)
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(CheckIn)) == 16


def test_a_charged_back_ticket_answers_revoked_once_the_chargeback_commits(
    client, store, partner, event
):
    from app.models import Payment

    kept = buy(client, event)
    disputed = buy(client, event, "bia@example.com")
    auth = device(partner, event)
    assert result(scan(client, auth, kept["tickets"][0]["code"]))["result"] == "valid"
    payment_id = db.session.scalar(select(Payment.id).where(Payment.order_id == disputed["id"]))
    refunds.record_chargeback(db.session, payment_id, "fraudulent", utcnow())
    db.session.rollback()  # a reconciliation that failed: nothing changes at the gate
    assert result(scan(client, auth, disputed["tickets"][0]["code"]))["result"] == "valid"
    refunds.record_chargeback(db.session, payment_id, "fraudulent", utcnow())
    db.session.commit()
    answer = result(scan(client, auth, disputed["tickets"][1]["code"]))
    assert answer["result"] == "revoked"


def test_a_log_record_the_database_refuses_does_not_block_the_others(client, store, partner, event):
    if store != "redis":
        pytest.skip("the scan log queue exists with Redis only")
    import json

    code = buy(client, event)["tickets"][0]["code"]
    auth = device(partner, event)
    cache = checkin.redis_client()
    bad = {
        "event_id": event.id, "ticket_id": None, "gate": "X", "direction": "in",
        "result": "invalid", "nonce": "refused-0001", "scanned_at": utcnow().isoformat(),
        "recorded_at": utcnow().isoformat(), "device_id": 999_999, "user_id": None,
        "offline": False, "device_verdict": None, "conflict": False, "entry_state": None,
    }  # fmt: skip
    cache.rpush(checkin.LOG_KEY, json.dumps(bad))
    assert result(scan(client, auth, code))["result"] == "valid"
    rows = logged()
    assert [r.result for r in rows] == ["valid"]
    assert cache.llen(checkin.LOG_KEY) == 0
    assert json.loads(cache.lpop(checkin.DEAD_LETTER_KEY))["nonce"] == "refused-0001"


def test_a_gate_working_one_event_refuses_the_other_events_tickets(client, store, partner, event):
    other = open_event(partner, "Matinee")
    ticket = buy(client, other)["tickets"][0]
    auth = device(partner, event, other)  # the device may scan both events
    answer = result(scan(client, auth, ticket["code"], event_id=event.id))
    assert answer["result"] == "wrong_event"
    assert result(scan(client, auth, ticket["code"], event_id=other.id))["result"] == "valid"
