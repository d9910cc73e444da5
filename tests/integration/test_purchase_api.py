"""Customers buy seats by card through the JSON API: holds, checkout, idempotency, orders."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    EventSpot,
    Hold,
    HoldStatus,
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    SpotStatus,
    Ticket,
    TicketStatus,
)
from app.models.codes import verify_ticket
from tests.support.builders import api_token, make_user
from tests.support.shop import (
    CUSTOMER_PASSWORD,
    DECLINED,
    NO_FUNDS,
    PROCESSING_ERROR,
    card_token,
    expire,
    hold_seats,
    pay,
    payment_of,
    sign_up,
)


def test_a_customer_buys_two_seats_and_gets_signed_tickets(client, on_sale):
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale)
    assert hold["seconds_left"] > 590 and len(hold["spots"]) == 2
    response = pay(client, headers, hold["id"], card_token(client))
    assert response.status_code == 201, response.get_json()
    order = response.get_json()["result"]
    assert order["status"] == "paid" and order["total_cents"] == 20000
    assert len(order["tickets"]) == 2
    for ticket in order["tickets"]:
        claim = verify_ticket(on_sale.public_key, ticket["code"])
        assert claim.event_id == on_sale.id and claim.ticket_id == ticket["id"]
    payment = order["payments"][0]
    assert payment["card_last4"] == "4242" and payment["card_brand"] == "visa"
    spots = db.session.scalars(select(EventSpot).where(EventSpot.id.in_(
        [s["id"] for s in hold["spots"]]))).all()  # fmt: skip
    assert {s.status for s in spots} == {SpotStatus.SOLD}
    history = client.get("/api/v1/orders/", headers=headers).get_json()
    assert [o["id"] for o in history["result"]] == [order["id"]]


@pytest.mark.parametrize("declined_first", [False, True])
def test_the_checkout_answers_the_order_as_reading_it_back_does(client, on_sale, declined_first):
    """The 201 is built from what the confirmation locked, not read back: it must say exactly
    what GET /orders/<id> says, earlier failed payments included."""
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale, count=3)
    if declined_first:
        assert pay(client, headers, hold["id"], card_token(client, DECLINED)).status_code == 402
    paid = pay(client, headers, hold["id"], card_token(client))
    assert paid.status_code == 201, paid.get_json()
    answered = paid.get_json()["result"]
    read_back = client.get(f"/api/v1/orders/{answered['id']}", headers=headers)
    assert answered == read_back.get_json()["result"]
    assert len(answered["payments"]) == (2 if declined_first else 1)
    assert [t["spot"] for t in answered["tickets"]] == ["A-1", "A-2", "A-3"]
    assert answered["paid_at"] is not None and answered["tickets"][0]["code"]


def test_a_retry_with_the_same_key_charges_once_and_returns_the_same_order(client, on_sale):
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale)
    token, key = card_token(client), uuid.uuid4().hex
    first = pay(client, headers, hold["id"], token, key)
    again = pay(client, headers, hold["id"], token, key)
    assert first.status_code == 201 and again.status_code == 200
    assert first.get_json()["result"]["id"] == again.get_json()["result"]["id"]
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
    other_body = pay(client, headers, hold["id"], card_token(client), key)
    assert other_body.status_code == 422
    assert other_body.get_json()["error"] == "idempotency_key_reused"
    second_key = pay(client, headers, hold["id"], token)
    assert second_key.status_code == 409  # already paid: never charged twice
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1


@pytest.mark.parametrize(
    ("number", "reason"),
    [(DECLINED, "card_declined"), (NO_FUNDS, "insufficient_funds"),
     (PROCESSING_ERROR, "processing_error")],
)  # fmt: skip
def test_a_declined_card_keeps_the_hold_for_a_retry(client, on_sale, number, reason):
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale)
    declined = pay(client, headers, hold["id"], card_token(client, number))
    assert declined.status_code == 402
    assert declined.get_json()["error"] == "card_declined"
    assert declined.get_json()["reason"] == reason
    assert db.session.get(Hold, hold["id"]).status == HoldStatus.ACTIVE
    retry = pay(client, headers, hold["id"], card_token(client))
    assert retry.status_code == 201
    order = db.session.get(Order, retry.get_json()["result"]["id"])
    assert order.status == OrderStatus.PAID
    statuses = sorted(p.status for p in order.payments)
    assert statuses == sorted([PaymentStatus.CAPTURED, "failed" if reason ==
                               "processing_error" else PaymentStatus.DECLINED])  # fmt: skip


def test_a_retried_key_answers_as_its_first_attempt_even_once_the_hold_is_gone(client, on_sale):
    """The key is looked up when the attempt cannot be recorded: a retry of a declined attempt
    whose hold expired meanwhile still answers the decline, not that the hold expired."""
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale)
    token, key = card_token(client, DECLINED), uuid.uuid4().hex
    assert pay(client, headers, hold["id"], token, key).status_code == 402
    expire(hold["id"])
    again = pay(client, headers, hold["id"], token, key)
    assert again.status_code == 402 and again.get_json()["reason"] == "card_declined"
    fresh_key = pay(client, headers, hold["id"], card_token(client))
    assert fresh_key.status_code == 409 and fresh_key.get_json()["error"] == "hold_expired"
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1


def test_a_taken_seat_answers_409_naming_it(client, on_sale):
    first = sign_up(client)
    second = sign_up(client, "bia@example.com", "Bia")
    hold_seats(client, first, on_sale, count=2)
    spot = on_sale.sections[0].spots[1]
    response = client.post(
        "/api/v1/holds/",
        json={"event_id": on_sale.id, "spot_ids": [spot.id, on_sale.sections[0].spots[5].id]},
        headers=second,
    )
    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "spots_unavailable"
    assert body["spots"] == [{"id": spot.id, "label": spot.label}]


def test_best_available_picks_adjacent_seats_in_one_row(client, on_sale):
    headers = sign_up(client)
    spots = on_sale.sections[0].spots
    spots[1].status = SpotStatus.BLOCKED.value  # breaks row A after A-1
    db.session.commit()
    response = client.post(
        "/api/v1/holds/",
        json={"event_id": on_sale.id, "section_id": on_sale.sections[0].id, "quantity": 4},
        headers=headers,
    )
    assert response.status_code == 201, response.get_json()
    labels = [s["label"] for s in response.get_json()["result"]["spots"]]
    assert labels == ["A-3", "A-4", "A-5", "A-6"]


def test_a_customer_may_hold_at_most_ten_spots_per_event(client, on_sale):
    headers = sign_up(client)
    section = on_sale.sections[0].id
    ok = client.post(
        "/api/v1/holds/",
        json={"event_id": on_sale.id, "section_id": section, "quantity": 8},
        headers=headers,
    )
    assert ok.status_code == 201
    too_many = client.post(
        "/api/v1/holds/",
        json={"event_id": on_sale.id, "section_id": section, "quantity": 3},
        headers=headers,
    )
    assert too_many.status_code == 422 and too_many.get_json()["error"] == "hold_limit"
    free = [s.id for s in on_sale.sections[0].spots if s.status == SpotStatus.AVAILABLE][:3]
    for body in ({"section_id": section, "quantity": 25}, {"spot_ids": free}):
        refused = client.post("/api/v1/holds/", json={"event_id": on_sale.id, **body},
                              headers=headers)  # fmt: skip
        assert refused.status_code == 422 and refused.get_json()["error"] == "hold_limit", body


def test_a_customer_at_the_limit_locks_no_spot(client, on_sale):
    """Asking past the limit locks nothing before it is refused: not the section's free rows
    other buyers skip, not chosen spots others may be paying for."""
    from sqlalchemy import event

    headers = sign_up(client)
    section = on_sale.sections[0].id
    hold = {"event_id": on_sale.id, "section_id": section, "quantity": 10}
    assert client.post("/api/v1/holds/", json=hold, headers=headers).status_code == 201
    locked: list[int] = []

    def note(_conn, cursor, statement, *_args):
        if "FOR UPDATE OF event_spot" in statement:
            locked.append(cursor.rowcount)

    event.listen(db.engine, "after_cursor_execute", note)
    try:
        free = [s.id for s in on_sale.sections[0].spots if s.status == SpotStatus.AVAILABLE][:2]
        for body in ({"section_id": section, "quantity": 1}, {"spot_ids": free},
                     {"section_id": section, "quantity": 40}):  # fmt: skip
            refused = client.post("/api/v1/holds/", json={"event_id": on_sale.id, **body},
                                  headers=headers)  # fmt: skip
            assert refused.status_code == 422 and refused.get_json()["error"] == "hold_limit"
    finally:
        event.remove(db.engine, "after_cursor_execute", note)
    assert locked and set(locked) == {0}


def test_an_expired_hold_frees_its_spots_at_once_and_cannot_be_paid(client, on_sale):
    first = sign_up(client)
    hold = hold_seats(client, first, on_sale, count=1)
    expire(hold["id"])
    second = sign_up(client, "bia@example.com", "Bia")
    taken = client.post(
        "/api/v1/holds/",
        json={"event_id": on_sale.id, "spot_ids": [hold["spots"][0]["id"]]},
        headers=second,
    )
    assert taken.status_code == 201
    late = pay(client, first, hold["id"], card_token(client))
    assert late.status_code == 409 and late.get_json()["error"] == "hold_expired"
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_releasing_a_hold_returns_its_spots(client, on_sale):
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale)
    assert client.delete(f"/api/v1/holds/{hold['id']}", headers=headers).status_code == 200
    db.session.expire_all()
    ids = [s["id"] for s in hold["spots"]]
    statuses = set(db.session.scalars(select(EventSpot.status).where(EventSpot.id.in_(ids))))
    assert statuses == {SpotStatus.AVAILABLE}


def test_another_customers_hold_and_order_answer_404(client, on_sale):
    ana = sign_up(client)
    hold = hold_seats(client, ana, on_sale)
    order = pay(client, ana, hold["id"], card_token(client)).get_json()["result"]
    bia = sign_up(client, "bia@example.com", "Bia")
    assert client.get(f"/api/v1/holds/{hold['id']}", headers=bia).status_code == 404
    assert client.delete(f"/api/v1/holds/{hold['id']}", headers=bia).status_code == 404
    assert pay(client, bia, hold["id"], card_token(client)).status_code == 404
    assert client.get(f"/api/v1/orders/{order['id']}", headers=bia).status_code == 404
    assert client.get("/api/v1/orders/", headers=bia).get_json()["count"] == 0


def test_a_payment_that_succeeds_after_the_hold_was_lost_is_refunded(client, on_sale, monkeypatch):
    from app.services import payments

    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale, count=1)
    real_charge = payments.SimulatedGateway.charge

    def charge_while_the_hold_is_lost(self, token, amount, currency, key):
        # While the card is being charged, the hold expires and another buyer takes the seat.
        expire(hold["id"])
        from app.services.purchase.release import release_expired_holds

        release_expired_holds(db.session)
        return real_charge(self, token, amount, currency, key)

    monkeypatch.setattr(payments.SimulatedGateway, "charge", charge_while_the_hold_is_lost)
    response = pay(client, headers, hold["id"], card_token(client))
    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "hold_lost" and body["refunded"] is True
    payment = db.session.scalars(select(Payment)).one()
    assert payment.status == PaymentStatus.REFUNDED
    order = payment.order
    assert order.status == OrderStatus.CANCELLED
    assert {t.status for t in order.tickets} == {TicketStatus.VOID}
    spot = db.session.get(EventSpot, hold["spots"][0]["id"])
    assert spot.status == SpotStatus.AVAILABLE
    assert db.session.scalar(select(func.count()).where(Ticket.status == "valid")) == 0


def test_checkout_needs_an_idempotency_key(client, on_sale):
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale)
    response = client.post(
        f"/api/v1/holds/{hold['id']}/checkout", json={"card_token": "x"}, headers=headers
    )
    assert response.status_code == 422 and response.get_json()["field"] == "Idempotency-Key"


def test_bad_hold_requests_get_a_json_reason(client, on_sale):
    headers = sign_up(client)
    for body in ({}, {"event_id": "x"}, {"event_id": on_sale.id, "spot_ids": []},
                 {"event_id": on_sale.id, "section_id": on_sale.sections[0].id, "quantity": 0},
                 {"event_id": 999999, "spot_ids": [1]}):  # fmt: skip
        response = client.post("/api/v1/holds/", json=body, headers=headers)
        assert 400 <= response.status_code < 500, (body, response.status_code)
        assert "error" in response.get_json() or "message" in response.get_json()


def test_sign_up_refuses_a_taken_email_and_bad_fields(client):
    sign_up(client)
    again = client.post(
        "/api/v1/customers/",
        json={"name": "A", "email": "ANA@example.com", "password": CUSTOMER_PASSWORD},
    )
    assert again.status_code == 409 and again.get_json()["field"] == "email"
    short = client.post(
        "/api/v1/customers/", json={"name": "B", "email": "b@example.com", "password": "123"}
    )
    assert short.status_code == 422 and short.get_json()["field"] == "password"


def test_the_openapi_spec_describes_the_purchase_api(client):
    make_user("root", "Admin")
    headers = api_token(client, "root")
    paths = client.get("/api/v1/_openapi", headers=headers).get_json()["paths"]
    for path, method in [
        ("/api/v1/catalog/events", "get"),
        ("/api/v1/catalog/events/{event_id}", "get"),
        ("/api/v1/catalog/events/{event_id}/spots", "get"),
        ("/api/v1/customers/", "post"),
        ("/api/v1/holds/", "post"),
        ("/api/v1/holds/{pk}", "delete"),
        ("/api/v1/holds/{pk}/checkout", "post"),
        ("/api/v1/orders/", "get"),
        ("/api/v1/orders/{pk}", "get"),
        ("/api/v1/queue/{event_id}", "post"),
        ("/api/v1/queue/{event_id}", "get"),
        ("/api/v1/queue/{event_id}", "delete"),
    ]:
        assert method in paths.get(path, {}), (path, method)
    checkout_doc = paths["/api/v1/holds/{pk}/checkout"]["post"]
    assert {"201", "402", "409", "422"} <= set(checkout_doc["responses"])


def test_the_public_catalogue_api_needs_no_login(client, on_sale):
    events = client.get("/api/v1/catalog/events?q=concert").get_json()
    assert [e["id"] for e in events["result"]] == [on_sale.id]
    event = client.get(f"/api/v1/catalog/events/{on_sale.id}").get_json()["result"]
    assert event["on_sale"] is True
    assert event["sections"][0]["available"] == 30 and event["sections"][0]["price_cents"] == 10000
    spots = client.get(f"/api/v1/catalog/events/{on_sale.id}/spots").get_json()
    section = spots["sections"][0]
    assert len(section["ids"]) == len(section["status"]) == 30
    assert set(section["status"]) == {"0"}
    assert client.get("/api/v1/catalog/events/999999").status_code == 404
    bad = client.get("/api/v1/catalog/events?date_from=yesterday")
    assert bad.status_code == 422 and bad.get_json()["field"] == "date_from"


def test_the_slow_test_card_is_approved_after_its_delay(client, on_sale, monkeypatch):
    from app.sim_acquirer import api as acquirer

    monkeypatch.setattr(acquirer, "SLOW_APPROVAL_SECONDS", 0.3)  # 5 s in the real demo
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale, count=1)
    started = time.monotonic()
    response = pay(client, headers, hold["id"], card_token(client, "4000000000000259"))
    assert response.status_code == 201
    assert time.monotonic() - started >= 0.3


def test_a_card_token_pays_once(client, on_sale):
    headers = sign_up(client)
    token = card_token(client)
    first = hold_seats(client, headers, on_sale, count=1)
    assert pay(client, headers, first["id"], token).status_code == 201
    spot = on_sale.sections[0].spots[5].id
    second = client.post(
        "/api/v1/holds/", json={"event_id": on_sale.id, "spot_ids": [spot]}, headers=headers
    ).get_json()["result"]
    reused = pay(client, headers, second["id"], token)
    assert reused.status_code == 402 and reused.get_json()["reason"] == "token_already_used"


def test_a_body_that_is_not_a_json_object_answers_400(client, on_sale):
    headers = sign_up(client)
    for path in ("/api/v1/holds/", "/api/v1/customers/"):
        response = client.post(path, data="not json", headers=headers)
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_request"
    listed = client.post("/api/v1/holds/", json=[1, 2], headers=headers)
    assert listed.status_code == 400


def test_the_customer_sees_what_they_paid_and_got_back_never_the_platform_fee(client, on_sale):
    """The partner's negotiated fee is between the partner and the platform: the customer API
    answers each payment's amount and refunds, not its fee or the partner's net."""
    headers = sign_up(client)
    paid = pay(client, headers, hold_seats(client, headers, on_sale)["id"], card_token(client))
    order = paid.get_json()["result"]
    # The books have the split (10 % + BRL 1.00 per ticket)...
    payment = payment_of(order)
    assert (payment.fee_cents, payment.net_cents) == (2000 + 200, 20000 - 2200)
    # ...the customer never sees it: not in the checkout's answer nor in the orders read back.
    listed = client.get("/api/v1/orders/", headers=headers).get_json()["result"]
    shown = client.get(f"/api/v1/orders/{order['id']}", headers=headers).get_json()["result"]
    for answer in (order, listed[0], shown):
        [line] = answer["payments"]
        assert set(line) == {
            "id", "status", "amount_cents", "refunded_cents", "card_brand", "card_last4",
            "failure_reason",
        }  # fmt: skip
        assert line["amount_cents"] == 20000 and line["refunded_cents"] == 0
