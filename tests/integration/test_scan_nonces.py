"""A scan's nonce names one scan: a retry of the same scan under it gets the first answer, and
the nonce sent again with another scan (another code, gate, direction or event) answers 422
``nonce_reused``, on every path: the database store, the Redis store (gate staff), the fast
path (devices of an armed event), offline uploads, and the database store reading what the
fast path logged. Each test runs on both stores (``store``)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from app.extensions import db
from app.models.base import utcnow
from app.services import checkin
from tests.support.builders import PartnerActor, api_token, make_partner, make_user
from tests.support.gate import device, forged, logged, open_event, result, scan
from tests.support.shop import buy


@pytest.fixture
def partner():
    return make_partner("Aurora")


@pytest.fixture
def event(partner):
    return open_event(partner)


def gate_staff(client, partner, event) -> dict[str, str]:
    """A gate user's API headers: staff logins never take the fast path."""
    user = make_user("gina", "Gate", partner)
    checkin.assign_gate_user(db.session, PartnerActor(partner), user.id, event.id)
    return api_token(client, "gina")


def refused_for_its_nonce(response: Any) -> bool:
    body = response.get_json()
    return (
        response.status_code == 422 and body["error"] == "nonce_reused" and body["field"] == "nonce"
    )


@pytest.mark.parametrize("who", ["device", "gate staff"])
def test_a_nonce_sent_again_with_another_scan_is_refused_and_changes_nothing(
    client, store, partner, event, who
):
    first_ticket, second_ticket = buy(client, event)["tickets"]
    auth = device(partner, event) if who == "device" else gate_staff(client, partner, event)
    nonce = uuid.uuid4().hex
    admitted = result(scan(client, auth, first_ticket["code"], nonce=nonce))
    assert admitted["result"] == "valid"
    # Warm the fast path (armed event, cached device): the reuses below are judged there.
    assert result(scan(client, auth, first_ticket["code"]))["result"] == "already_used"

    forgery = scan(client, auth, forged(first_ticket["code"]), nonce=nonce)
    another_ticket = scan(client, auth, second_ticket["code"], nonce=nonce)
    another_gate = scan(client, auth, first_ticket["code"], nonce=nonce, gate="South")
    going_out = scan(client, auth, first_ticket["code"], nonce=nonce, direction="out")
    another_event = scan(client, auth, first_ticket["code"], nonce=nonce, event_id=event.id)

    for response in (forgery, another_ticket, another_gate, going_out, another_event):
        assert refused_for_its_nonce(response), response.get_json()
    # The same scan again still gets its first answer; the second ticket was not let in.
    assert result(scan(client, auth, first_ticket["code"], nonce=nonce)) == admitted
    assert result(scan(client, auth, second_ticket["code"]))["result"] == "valid"
    assert [r.result for r in logged()] == ["valid", "already_used", "valid"]


def test_the_fast_path_leaves_a_reused_nonce_to_the_full_path(client, store, partner, event):
    if store != "redis":
        pytest.skip("the fast path serves armed events from Redis")
    first_ticket, second_ticket = buy(client, event)["tickets"]
    _, token = checkin.register_device(db.session, PartnerActor(partner), "Lane", [event.id])
    auth = {"Authorization": f"Bearer {token}"}
    assert result(scan(client, auth, first_ticket["code"], nonce="lane-0001"))["result"] == "valid"
    cache = checkin.redis_client()

    def body(code: str) -> bytes:
        return json.dumps(
            {"code": code, "gate": "North", "direction": "in", "nonce": "lane-0001"}
        ).encode()

    replayed = checkin.fast_scan(cache, token, body(first_ticket["code"]))
    assert replayed is not None and json.loads(replayed)["result"] == "valid"
    assert checkin.fast_scan(cache, token, body(second_ticket["code"])) is None
    assert checkin.fast_scan(cache, token, body(forged(first_ticket["code"]))) is None


def test_a_nonce_the_fast_path_logged_is_checked_by_the_database_store_too(
    app, client, store, partner, event
):
    if store != "redis":
        pytest.skip("about the scan log Redis queues for the database")
    first_ticket, second_ticket = buy(client, event)["tickets"]
    auth = device(partner, event)
    result(scan(client, auth, first_ticket["code"]))  # arms the event and caches the device
    admitted = result(scan(client, auth, second_ticket["code"], nonce="fast-00000001"))
    assert admitted["result"] == "valid"
    logged()  # flushed to the database
    app.config["REDIS_URL"] = None  # Redis gone: the database store answers

    assert refused_for_its_nonce(scan(client, auth, first_ticket["code"], nonce="fast-00000001"))
    assert result(scan(client, auth, second_ticket["code"], nonce="fast-00000001")) == admitted


def offline_scan(code: str, nonce: str, **fields: Any) -> dict[str, Any]:
    return {
        "code": code, "gate": "North", "direction": "in", "nonce": nonce,
        "scanned_at": utcnow().isoformat() + "Z", "verdict": "valid", **fields,
    }  # fmt: skip


def test_an_offline_upload_reusing_a_nonce_for_another_scan_is_refused_by_index(
    client, store, partner, event
):
    first_ticket, second_ticket = buy(client, event)["tickets"]
    auth = device(partner, event)

    def upload(*scans: dict[str, Any]) -> Any:
        return client.post("/api/v1/checkin/offline-scans", json={"scans": scans}, headers=auth)

    assert upload(offline_scan(first_ticket["code"], "off-0001")).status_code == 200
    refused = upload(
        offline_scan(second_ticket["code"], "off-0002"),
        offline_scan(forged(second_ticket["code"]), "off-0001"),
    )
    body = refused.get_json()
    assert refused.status_code == 422, body
    assert (body["error"], body["field"]) == ("nonce_reused", "scans[1].nonce")
    # Sent again without the refused scan (as the gate page does), the rest goes through.
    again = upload(offline_scan(second_ticket["code"], "off-0002"))
    assert again.get_json()["results"] == [
        {"nonce": "off-0002", "result": "valid", "conflict": False}
    ]
    assert len(logged()) == 2


def test_a_scan_whose_online_answer_was_lost_is_uploaded_under_its_nonce_and_replayed(
    client, store, partner, event
):
    ticket = buy(client, event)["tickets"][0]
    auth = device(partner, event)
    # Online, the gate page sends no time nor verdict; offline it sends both, and the same
    # code, gate, direction and event: the same scan.
    online = result(scan(client, auth, ticket["code"], nonce="lost-0001", event_id=event.id))
    assert online["result"] == "valid"

    uploaded = client.post(
        "/api/v1/checkin/offline-scans",
        json={"scans": [offline_scan(ticket["code"], "lost-0001", event_id=event.id)]},
        headers=auth,
    )

    assert uploaded.status_code == 200, uploaded.get_json()
    assert uploaded.get_json()["results"] == [
        {"nonce": "lost-0001", "result": "valid", "conflict": False}
    ]
    assert len(logged()) == 1
