"""Gate check-in: the scan API answers every case, once per nonce, and logs every scan; devices
and gate staff see only their partner's events. Each test runs on both stores: the database
(embedded default) and Redis (an armed event), when Redis is configured."""

from __future__ import annotations

import datetime as dt
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
from tests.support.builders import PASSWORD, PartnerActor, api_token, make_partner, make_user
from tests.support.gate import device, forged, logged, open_event, result, scan
from tests.support.shop import buy, sign_up


@pytest.fixture
def partner():
    return make_partner("Aurora")


@pytest.fixture
def event(partner):
    return open_event(partner)


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
    retry = result(scan(client, auth, ticket["code"], nonce=nonce))
    assert first["result"] == "valid" and retry == first
    assert len(logged()) == 1


def test_a_refunded_ticket_answers_revoked(client, store, partner, event):
    kept = buy(client, event)
    refunded = buy(client, event)
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
    conflicts = [(r.nonce, r.conflict, r.offline) for r in rows if r.conflict]
    assert len(conflicts) == 1 and conflicts[0][0].endswith(":south-0001")
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


@pytest.mark.concurrency
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
    disputed = buy(client, event)
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


def test_another_partners_device_reusing_a_nonce_learns_nothing(client, store, partner, event):
    ticket = buy(client, event)["tickets"][0]
    auth = device(partner, event)
    rival = make_partner("Rival")
    rival_event = open_event(rival, "Rival show")
    rival_auth = device(rival, rival_event, name="Rival gate")
    first = result(scan(client, auth, ticket["code"], nonce="counter-00000001"))
    assert first["holder_name"] == "Ana Souza"
    other = result(scan(client, rival_auth, "garbage-code", nonce="counter-00000001"))
    assert other == {"result": "invalid", "reason": "malformed"}
    rows = logged()
    assert len(rows) == 2  # the rival's scan is logged too, under its own event
    assert {r.event_id for r in rows} == {event.id, rival_event.id}


@pytest.mark.parametrize(
    ("field", "value"),
    [("gate", "North\x00"), ("code", "abc\x07def"), ("nonce", "nonce\x00\x00\x00\x00"),
     ("scanned_at", "0001-01-01T00:00:00+01:00"), ("nonce", "has spaces in it")],
)  # fmt: skip
def test_control_characters_and_impossible_times_are_refused_by_field(
    client, store, partner, event, field, value
):
    body = {"code": "x" * 20, "gate": "North", "nonce": uuid.uuid4().hex, field: value}
    response = client.post("/api/v1/checkin/scan", json=body, headers=device(partner, event))
    assert response.status_code == 422
    assert response.get_json()["field"] == field


def test_a_foreign_events_code_arms_nothing_and_reveals_nothing(client, store, partner, event):
    rival = make_partner("Rival")
    rival_event = open_event(rival, "Rival show")
    code = buy(client, rival_event)["tickets"][0]["code"]
    answer = result(scan(client, device(partner, event), code))
    assert answer == {"result": "wrong_event"}
    db.session.expire_all()
    assert db.session.get(Event, rival_event.id).armed_at is None


def test_a_refresh_token_is_not_a_scan_credential(client, store, partner, event):
    gate_user = make_user("gina", "Gate", partner)
    checkin.assign_gate_user(db.session, PartnerActor(partner), gate_user.id, event.id)
    tokens = client.post(
        "/api/v1/security/login",
        json={"username": "gina", "password": PASSWORD, "provider": "db", "refresh": True},
    )
    refresh = tokens.get_json()["refresh_token"]
    response = client.get("/api/v1/checkin/events", headers={"Authorization": f"Bearer {refresh}"})
    assert response.status_code == 401


def test_a_revoked_device_stays_refused_even_with_its_credentials_cached(
    client, store, partner, event
):
    if store != "redis":
        pytest.skip("about the Redis credential cache")
    gate_device, token = checkin.register_device(
        db.session, PartnerActor(partner), "Lost phone", [event.id]
    )
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/checkin/events", headers=auth).status_code == 200
    checkin.revoke_device(db.session, PartnerActor(partner), gate_device.id)
    # A stale copy (written by an arming run that read the device just before it was revoked).
    scanner = checkin.Scanner(partner.id, frozenset({event.id}), device_id=gate_device.id)
    checkin.redis_client().set(f"ck:dev:{gate_device.token_hash}", scanner.to_json())
    assert client.get("/api/v1/checkin/events", headers=auth).status_code == 401


def test_re_arming_keeps_revocations_pushed_meanwhile(client, store, partner, event):
    if store != "redis":
        pytest.skip("arming copies to Redis")
    order = buy(client, event)
    auth = device(partner, event)
    checkin.arm_event(db.session, event.id)
    refunded = order["tickets"][0]["id"]
    checkin.note_revoked(event.id, [refunded])  # the refund's push, racing a re-arm
    checkin.arm_event(db.session, event.id)  # read the database before the refund committed
    answer = result(scan(client, auth, order["tickets"][0]["code"]))
    assert answer["result"] == "revoked"


def test_a_retry_while_the_first_answer_is_in_flight_is_still_admitted(
    client, store, partner, event
):
    if store != "redis":
        pytest.skip("the database store serialises the two on the entry's key")
    ticket = buy(client, event)["tickets"][0]
    _, token = checkin.register_device(db.session, PartnerActor(partner), "Lane", [event.id])
    scanner = checkin.scanner_for_token(db.session, token)
    request = checkin.parse_scan({"code": ticket["code"], "gate": "N", "nonce": "retry-000001"})
    store_ = checkin.RedisStore(checkin.redis_client(), db.session)
    info = store_.event_info(event.id)
    nonce = scanner.scoped(request.nonce)
    # The first request took the entry; its answer is not recorded yet when the retry arrives.
    assert store_.enter(info, ticket["id"], request, nonce)[0] == "valid"
    assert store_.enter(info, ticket["id"], request, nonce)[0] == "valid"
    other = checkin.parse_scan({"code": ticket["code"], "gate": "S", "nonce": "other-000001"})
    assert store_.enter(info, ticket["id"], other, scanner.scoped(other.nonce))[0] == (
        "already_used"
    )


def test_only_one_flusher_writes_the_scan_log_at_a_time(client, store, partner, event):
    if store != "redis":
        pytest.skip("the scan log queue exists with Redis only")
    code = buy(client, event)["tickets"][0]["code"]
    result(scan(client, device(partner, event), code))
    cache = checkin.redis_client()
    lock = cache.lock("ck:log:flushing", timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert checkin.flush_scan_log(db.session) == 0  # another flusher is at work
        assert cache.llen(checkin.LOG_KEY) == 1
    finally:
        lock.release()
    assert checkin.flush_scan_log(db.session) == 1


def test_the_fast_path_answers_armed_device_scans_in_one_call_and_defers_the_rest(
    client, store, partner, event
):
    if store != "redis":
        pytest.skip("the fast path serves armed events from Redis")
    import json

    tickets = buy(client, event)["tickets"]
    _, token = checkin.register_device(db.session, PartnerActor(partner), "Lane", [event.id])
    auth = {"Authorization": f"Bearer {token}"}
    redis_client = checkin.redis_client()

    def body(code: str, nonce: str) -> bytes:
        return json.dumps({"code": code, "gate": "North", "nonce": nonce}).encode()

    # Not armed yet (and the device not cached): the full path answers, and arms the event.
    assert checkin.fast_scan(redis_client, token, body(tickets[0]["code"], "fast-0001")) is None
    first = result(scan(client, auth, tickets[0]["code"], nonce="fast-0001"))
    assert first["result"] == "valid"
    # Armed: the fast path answers as the full path would have.
    answer = json.loads(
        checkin.fast_scan(redis_client, token, body(tickets[1]["code"], "fast-0002"))
    )
    assert answer["result"] == "valid" and answer["holder_name"] == "Ana Souza"
    assert answer["ticket_id"] == tickets[1]["id"] and answer["section"] == first["section"]
    again = json.loads(
        checkin.fast_scan(redis_client, token, body(tickets[1]["code"], "fast-0003"))
    )
    assert again["result"] == "already_used" and again["first_scan"]["gate"] == "North"
    # Staff logins and unknown tokens take the full path.
    assert checkin.fast_scan(redis_client, "a.b.c", body(tickets[1]["code"], "fast-0004")) is None
    assert checkin.fast_scan(redis_client, "unknown", body(tickets[1]["code"], "fast-0005")) is None
    rows = logged()
    assert [r.result for r in rows] == ["valid", "valid", "already_used"]
