"""The cart (#19 point 4): a customer's live hold for an event gathers holds for several sections
and ticket types into one order and one payment; the event page shows it with its time left; the
per-customer limit counts all of it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import current_app
from sqlalchemy import func, select, text

from app.extensions import db
from app.models import EventSpot, Hold, HoldStatus, Order, OrderStatus, SpotStatus, Ticket
from app.services import payments
from app.services.purchase import sold_out
from tests.support.builders import login, make_event, make_partner
from tests.support.shop import CUSTOMER_PASSWORD, DECLINED, card_token, expire, pay, sign_up


@pytest.fixture
def two_sections():
    """A published event of two sections of 10 seats at BRL 100.00."""
    event = make_event(make_partner("Aurora"), sections=2, rows=("A", "B"), seats=5)
    event.publish()
    db.session.commit()
    return event


def _hold(client, headers, event, **wanted):
    return client.post("/api/v1/holds/", json={"event_id": event.id, **wanted}, headers=headers)


def _best(client, headers, event, section, quantity):
    response = _hold(
        client, headers, event, section_id=event.sections[section].id, quantity=quantity
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["result"]


def test_a_second_hold_joins_the_first_and_one_payment_buys_both(client, two_sections):
    headers = sign_up(client)
    first = _best(client, headers, two_sections, 0, 2)
    second = _best(client, headers, two_sections, 1, 3)
    assert second["id"] == first["id"]
    assert len(second["spots"]) == 5 and second["total_cents"] == 50000
    assert {s["section"] for s in second["spots"]} == {"Section 1", "Section 2"}
    # The added seats expire with the cart: its time does not restart.
    assert second["expires_at"] == first["expires_at"]
    assert db.session.scalar(select(func.count()).select_from(Hold)) == 1
    paid = pay(client, headers, first["id"], card_token(client))
    assert paid.status_code == 201, paid.get_json()
    order = paid.get_json()["result"]
    assert order["total_cents"] == 50000 and len(order["tickets"]) == 5
    assert len(order["payments"]) == 1 and order["payments"][0]["amount_cents"] == 50000
    sold = db.session.scalar(
        select(func.count()).where(
            EventSpot.event_id == two_sections.id, EventSpot.status == SpotStatus.SOLD
        )
    )
    assert sold == 5


def test_another_customer_and_another_event_get_their_own_holds(client, two_sections):
    ana, bia = sign_up(client), sign_up(client, "bia@example.com")
    other = make_event(two_sections.partner, "Other")
    other.publish()
    db.session.commit()
    mine = _best(client, ana, two_sections, 0, 1)
    assert _best(client, bia, two_sections, 0, 1)["id"] != mine["id"]
    assert _best(client, ana, other, 0, 1)["id"] != mine["id"]


def test_a_paid_or_expired_cart_is_not_added_to(client, two_sections):
    headers = sign_up(client)
    first = _best(client, headers, two_sections, 0, 1)
    assert pay(client, headers, first["id"], card_token(client)).status_code == 201
    second = _best(client, headers, two_sections, 0, 1)
    assert second["id"] != first["id"] and len(second["spots"]) == 1
    expire(second["id"])
    third = _best(client, headers, two_sections, 1, 1)
    assert third["id"] not in (first["id"], second["id"]) and len(third["spots"]) == 1


def test_the_limit_counts_the_whole_cart(client, two_sections):
    headers = sign_up(client)
    limit = current_app.config["MAX_SPOTS_PER_EVENT"]
    cart = _best(client, headers, two_sections, 0, limit - 1)
    refused = _hold(
        client, headers, two_sections, section_id=two_sections.sections[1].id, quantity=2
    )
    assert refused.status_code == 422
    assert refused.get_json()["error"] == "hold_limit"
    assert len(_best(client, headers, two_sections, 1, 1)["spots"]) == limit
    kept = client.get(f"/api/v1/holds/{cart['id']}", headers=headers).get_json()["result"]
    assert len(kept["spots"]) == limit


def test_changing_a_declined_cart_voids_its_order_and_the_next_checkout_prices_all(
    client, two_sections
):
    headers = sign_up(client)
    cart = _best(client, headers, two_sections, 0, 1)
    assert pay(client, headers, cart["id"], card_token(client, DECLINED)).status_code == 402
    [declined] = db.session.scalars(select(Order)).all()
    assert declined.total_cents == 10000
    _best(client, headers, two_sections, 1, 2)
    db.session.expire_all()
    assert declined.status == OrderStatus.CANCELLED and declined.cancel_reason == "cart_changed"
    assert declined.hold_id is None
    paid = pay(client, headers, cart["id"], card_token(client))
    assert paid.status_code == 201, paid.get_json()
    assert paid.get_json()["result"]["total_cents"] == 30000
    assert paid.get_json()["result"]["id"] != declined.id


def test_a_cart_being_paid_cannot_change(client, two_sections, monkeypatch):
    headers = sign_up(client)
    cart = _best(client, headers, two_sections, 0, 1)
    spot = cart["spots"][0]["id"]
    tried = {}
    charge = payments.SimulatedGateway.charge

    def charge_while_the_customer_changes_the_cart(self, token, amount, currency, key):
        # The attempt is recorded (its payment pending) and the card is being charged.
        tried["add"] = _hold(
            client, headers, two_sections, section_id=two_sections.sections[1].id, quantity=1
        )
        tried["remove"] = client.delete(f"/api/v1/holds/{cart['id']}/spots/{spot}", headers=headers)
        return charge(self, token, amount, currency, key)

    monkeypatch.setattr(
        payments.SimulatedGateway, "charge", charge_while_the_customer_changes_the_cart
    )
    paid = pay(client, headers, cart["id"], card_token(client))
    assert paid.status_code == 201, paid.get_json()
    assert paid.get_json()["result"]["total_cents"] == 10000
    for refused in tried.values():
        assert refused.status_code == 409, refused.get_json()
        assert refused.get_json()["error"] == "checkout_in_progress"
    db.session.expire_all()
    assert db.session.get(EventSpot, spot).status == SpotStatus.SOLD
    assert db.session.scalar(select(func.count()).select_from(Hold)) == 1


def test_a_spot_taken_out_of_the_cart_goes_back_on_sale(client, two_sections):
    headers = sign_up(client)
    _best(client, headers, two_sections, 0, 1)
    cart = _best(client, headers, two_sections, 1, 2)
    out = cart["spots"][-1]["id"]
    response = client.delete(f"/api/v1/holds/{cart['id']}/spots/{out}", headers=headers)
    assert response.status_code == 200, response.get_json()
    left = response.get_json()["result"]
    assert [s["id"] for s in left["spots"]] == [s["id"] for s in cart["spots"][:-1]]
    assert left["total_cents"] == 20000 and left["status"] == "active"
    spot = db.session.get(EventSpot, out)
    assert spot.status == SpotStatus.AVAILABLE and spot.hold_id is None
    # Again: it is no longer in the cart.
    again = client.delete(f"/api/v1/holds/{cart['id']}/spots/{out}", headers=headers)
    assert again.status_code == 404 and again.get_json()["field"] == "spot_id"
    # Another customer's cart is not found.
    other = client.delete(
        f"/api/v1/holds/{cart['id']}/spots/{cart['spots'][0]['id']}",
        headers=sign_up(client, "bia@example.com"),
    )
    assert other.status_code == 404
    for spot in left["spots"]:
        last = client.delete(f"/api/v1/holds/{cart['id']}/spots/{spot['id']}", headers=headers)
        assert last.status_code == 200
    assert last.get_json()["result"]["status"] == HoldStatus.RELEASED
    assert db.session.get(Hold, cart["id"]).status == HoldStatus.RELEASED


def test_taking_a_spot_out_of_a_declined_cart_prices_the_rest(client, two_sections):
    headers = sign_up(client)
    cart = _best(client, headers, two_sections, 0, 3)
    assert pay(client, headers, cart["id"], card_token(client, DECLINED)).status_code == 402
    out, label = cart["spots"][0]["id"], cart["spots"][0]["label"]
    assert (
        client.delete(f"/api/v1/holds/{cart['id']}/spots/{out}", headers=headers).status_code == 200
    )
    paid = pay(client, headers, cart["id"], card_token(client))
    assert paid.status_code == 201, paid.get_json()
    order = paid.get_json()["result"]
    assert order["total_cents"] == 20000 and label not in {t["spot"] for t in order["tickets"]}


def test_the_customer_lists_their_carts(client, two_sections):
    headers = sign_up(client)
    cart = _best(client, headers, two_sections, 0, 2)
    listed = client.get(f"/api/v1/holds/?event_id={two_sections.id}", headers=headers)
    assert listed.status_code == 200
    assert [(h["id"], len(h["spots"])) for h in listed.get_json()["result"]] == [(cart["id"], 2)]
    assert client.get("/api/v1/holds/", headers=headers).get_json()["result"][0]["id"] == cart["id"]
    other = client.get("/api/v1/holds/", headers=sign_up(client, "bia@example.com"))
    assert other.get_json()["result"] == []
    bad = client.get("/api/v1/holds/?event_id=abc", headers=headers)
    assert bad.status_code == 400 and bad.get_json()["field"] == "event_id"
    expire(cart["id"])
    assert client.get("/api/v1/holds/", headers=headers).get_json()["result"] == []


@pytest.mark.concurrency
def test_one_customers_holds_at_once_make_one_cart(app, two_sections):
    """Six requests of one customer at the same moment, on real connections: each waits for the
    customer's lock and then sees the cart the one before committed."""
    client = app.test_client()
    headers = sign_up(client)
    sections = [s.id for s in two_sections.sections]
    start = threading.Barrier(6)

    def attempt(n: int) -> int:
        start.wait(10)
        response = app.test_client().post(
            "/api/v1/holds/",
            json={"event_id": two_sections.id, "section_id": sections[n % 2], "quantity": 1},
            headers=headers,
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()["result"]["id"]

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(attempt, range(6)))
    db.session.rollback()
    assert len(ids) == 1
    [hold] = db.session.scalars(select(Hold)).all()
    assert len(hold.spots) == 6
    assert db.session.scalar(select(func.count()).select_from(Ticket)) == 0


def test_the_event_page_shows_the_cart_and_its_time_left(client, two_sections):
    headers = sign_up(client)
    cart = _best(client, headers, two_sections, 0, 1)
    _best(client, headers, two_sections, 1, 1)
    login(client, "ana@example.com", CUSTOMER_PASSWORD)
    page = client.get(f"/events/{two_sections.id}").get_data(as_text=True)
    assert f'id="cart-{cart["id"]}"' in page
    assert "Section 1" in page and "Section 2" in page and "R$200.00" in page
    assert 'class="cart-countdown" data-seconds="' in page
    assert f"/holds/{cart['id']}/spots/" in page


def test_a_hold_asked_again_under_its_key_answers_the_cart_and_takes_nothing_more(
    client, two_sections
):
    headers = sign_up(client)
    keyed = {**headers, "Idempotency-Key": "hold-attempt-0001"}
    body = {"event_id": two_sections.id, "section_id": two_sections.sections[0].id, "quantity": 2}
    first = client.post("/api/v1/holds/", json=body, headers=keyed)
    assert first.status_code == 201
    # The answer was lost: the client asks again, and again once more seats joined the cart.
    again = client.post("/api/v1/holds/", json=body, headers=keyed)
    assert again.status_code == 200
    assert again.get_json()["result"] == first.get_json()["result"] | {
        "seconds_left": again.get_json()["result"]["seconds_left"]
    }
    more = _best(client, headers, two_sections, 1, 1)
    assert len(more["spots"]) == 3
    third = client.post("/api/v1/holds/", json=body, headers=keyed)
    assert third.status_code == 200 and len(third.get_json()["result"]["spots"]) == 3
    held = select(func.count()).where(EventSpot.status == SpotStatus.HELD)
    assert db.session.scalar(held) == 3
    # Another key is another request; a bad key is refused.
    other = client.post(
        "/api/v1/holds/", json=body, headers={**headers, "Idempotency-Key": "x" * 8}
    )
    assert other.status_code == 201 and len(other.get_json()["result"]["spots"]) == 5
    short = client.post("/api/v1/holds/", json=body, headers={**headers, "Idempotency-Key": "abc"})
    assert short.status_code == 400 and short.get_json()["field"] == "Idempotency-Key"
    # Once the seats it took are no longer held (released, expired, sold), the key is free.
    cart = first.get_json()["result"]
    for spot in cart["spots"]:
        client.delete(f"/api/v1/holds/{cart['id']}/spots/{spot['id']}", headers=headers)
    after = client.post("/api/v1/holds/", json=body, headers=keyed)
    assert after.status_code == 201 and len(after.get_json()["result"]["spots"]) == 5


@pytest.mark.concurrency
def test_a_cart_changed_while_its_checkout_is_recorded_is_refused(app, two_sections):
    """The add waits for the cart's row, which checkout's first step holds while it records the
    order and its pending payment: once it has the row, it must see that payment (a statement
    that waited for a lock sees only that row anew) and refuse, not add seats the payment does
    not cover."""
    client = app.test_client()
    headers = sign_up(client)
    cart = _best(client, headers, two_sections, 0, 2)
    hold = db.session.get(Hold, cart["id"])
    customer_id, event_id = hold.customer_id, two_sections.id
    second = two_sections.sections[1].id
    db.session.rollback()
    answer = {}

    def add() -> None:
        response = app.test_client().post(
            "/api/v1/holds/",
            json={"event_id": event_id, "section_id": second, "quantity": 1},
            headers=headers,
        )
        answer["add"] = (response.status_code, response.get_json())

    with db.engine.connect() as conn, conn.begin():
        conn.execute(text("SELECT id FROM hold WHERE id = :h FOR UPDATE"), {"h": cart["id"]})
        adding = threading.Thread(target=add)
        adding.start()
        time.sleep(0.7)  # the add waits for the cart's lock (lock_timeout 2 s)
        order_id = conn.execute(
            text(
                'INSERT INTO "order" (customer_id, event_id, hold_id, status, total_cents, '
                "currency, created_at) VALUES (:c, :e, :h, 'pending', 20000, 'BRL', now()) "
                "RETURNING id"
            ),
            {"c": customer_id, "e": event_id, "h": cart["id"]},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO payment (order_id, idempotency_key, status, amount_cents, currency, "
                "fee_cents, net_cents, gateway, created_at, request_fingerprint) VALUES "
                "(:o, 'race-key-0001', 'pending', 20000, 'BRL', 0, 20000, 'sim', now(), 'x')"
            ),
            {"o": order_id},
        )
    adding.join(10)
    status, body = answer["add"]
    assert status == 409 and body["error"] == "checkout_in_progress", body
    held = select(func.count()).where(EventSpot.hold_id == cart["id"])
    assert db.session.scalar(held) == 2


def test_a_hold_asked_again_under_its_key_is_not_refused_from_the_sold_out_memory(client):
    """The client took the section's last seat and lost the answer; another buyer's refusal puts
    the section in the process's sold-out memory: the retry under its key answers the cart."""
    event = make_event(make_partner("Aurora"), rows=("A", "A"), seats=1)
    event.publish()
    db.session.commit()
    sold_out.forget()
    body = {"event_id": event.id, "section_id": event.sections[0].id, "quantity": 1}
    keyed = {**sign_up(client), "Idempotency-Key": "hold-attempt-0001"}
    assert client.post("/api/v1/holds/", json=body, headers=keyed).status_code == 201
    other = sign_up(client, "bia@example.com")
    assert client.post("/api/v1/holds/", json=body, headers=other).status_code == 409
    again = client.post("/api/v1/holds/", json=body, headers=keyed)
    assert again.status_code == 200, again.get_json()
    assert len(again.get_json()["result"]["spots"]) == 1


def test_removing_a_seat_from_a_cart_that_expired_says_so_on_the_page(client, two_sections):
    headers = sign_up(client)
    cart = _best(client, headers, two_sections, 0, 1)
    login(client, "ana@example.com", CUSTOMER_PASSWORD)
    expire(cart["id"])
    url = f"/holds/{cart['id']}/spots/{cart['spots'][0]['id']}/release"
    answer = client.post(url, follow_redirects=True)
    assert answer.status_code == 200
    assert "This spot is not in your cart." in answer.get_data(as_text=True)
    # Another customer's cart is still not found.
    other = client.application.test_client()
    sign_up(other, "bia@example.com")
    login(other, "bia@example.com", CUSTOMER_PASSWORD)
    assert other.post(url).status_code == 404
