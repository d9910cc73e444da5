"""A hold keeps the prices it quoted: the checkout charges exactly them, whatever the partner
does to the section's price meanwhile; a client that sends the total it showed is refused (409
``price_changed``, nothing charged, the hold kept) rather than charged another amount."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    EventSection,
    Hold,
    HoldStatus,
    Order,
    Payment,
    SpotStatus,
    Ticket,
    local_time,
)
from app.models.base import MAX_INT
from tests.support.pages import (
    alerts,
    card_form,
    hold_form,
    page_sign_up,
    path_of,
    pay_form,
    text,
)
from tests.support.shop import card_token, hold_seats, sign_up

QUOTED, RAISED = 22000, 67234  # BRL 220.00 when held, BRL 672.34 by the time of paying


@pytest.fixture
def priced(on_sale):
    """The on-sale event with its section at BRL 220.00."""
    on_sale.sections[0].price_cents = QUOTED
    db.session.commit()
    return on_sale


def set_price(event, cents: int) -> None:
    """The partner changes the section's price."""
    section = db.session.get(EventSection, event.sections[0].id)
    section.price_cents = cents
    db.session.commit()


def checkout(client, headers, hold_id, body, key=None):
    return client.post(
        f"/api/v1/holds/{hold_id}/checkout",
        json=body,
        headers={**headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("new_price", [RAISED, 5000])
def test_checkout_charges_the_price_the_hold_quoted_whatever_the_section_costs_now(
    client, priced, new_price
):
    headers = sign_up(client)
    hold = hold_seats(client, headers, priced, count=1)
    assert hold["total_cents"] == QUOTED and hold["spots"][0]["price_cents"] == QUOTED
    set_price(priced, new_price)
    shown = client.get(f"/api/v1/holds/{hold['id']}", headers=headers).get_json()["result"]
    assert shown["total_cents"] == QUOTED and shown["spots"][0]["price_cents"] == QUOTED

    paid = checkout(client, headers, hold["id"], {"card_token": card_token(client)})
    assert paid.status_code == 201, paid.get_json()
    order = paid.get_json()["result"]
    assert order["total_cents"] == QUOTED
    assert [t["price_cents"] for t in order["tickets"]] == [QUOTED]
    assert [p["amount_cents"] for p in order["payments"]] == [QUOTED]
    [payment] = db.session.scalars(select(Payment))
    assert payment.amount_cents == QUOTED and payment.fee_cents + payment.net_cents == QUOTED
    assert db.session.scalar(select(Ticket.price_cents)) == QUOTED


def test_a_total_other_than_the_held_one_answers_409_charges_nothing_and_keeps_the_hold(
    client, priced
):
    headers = sign_up(client)
    hold = hold_seats(client, headers, priced, count=2)
    set_price(priced, RAISED)
    key = uuid.uuid4().hex
    body = {"card_token": card_token(client), "expected_total_cents": 2 * RAISED}
    refused = checkout(client, headers, hold["id"], body, key)
    assert refused.status_code == 409, refused.get_json()
    answer = refused.get_json()
    assert answer["error"] == "price_changed" and answer["field"] == "expected_total_cents"
    assert (answer["held_total_cents"], answer["expected_total_cents"]) == (2 * QUOTED, 2 * RAISED)
    assert "R$440.00" in answer["message"] and "R$1,344.68" in answer["message"]
    assert count(Payment) == count(Order) == 0
    db.session.expire_all()
    kept = db.session.get(Hold, hold["id"])
    assert (
        kept.status == HoldStatus.ACTIVE
        and local_time.iso_utc(kept.expires_at) == hold["expires_at"]
    )
    assert [(s.status, s.held_price_cents) for s in kept.spots] == [(SpotStatus.HELD, QUOTED)] * 2

    # The same key and card with the total the hold costs: charged that, once.
    body["expected_total_cents"] = 2 * QUOTED
    paid = checkout(client, headers, hold["id"], body, key)
    assert paid.status_code == 201, paid.get_json()
    assert paid.get_json()["result"]["total_cents"] == 2 * QUOTED
    again = checkout(client, headers, hold["id"], body, key)
    assert (
        again.status_code == 200
        and again.get_json()["result"]["id"] == paid.get_json()["result"]["id"]
    )
    assert count(Payment) == 1


def test_a_retry_naming_another_total_under_the_same_key_is_another_request(client, priced):
    headers = sign_up(client)
    hold = hold_seats(client, headers, priced, count=1)
    key, token = uuid.uuid4().hex, card_token(client)
    paid = checkout(
        client, headers, hold["id"], {"card_token": token, "expected_total_cents": QUOTED}, key
    )
    assert paid.status_code == 201, paid.get_json()
    other = checkout(
        client, headers, hold["id"], {"card_token": token, "expected_total_cents": 1}, key
    )
    assert other.status_code == 422 and other.get_json()["error"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    "value", [-1, 220.5, "22000", True, [22000], {"cents": 1}, MAX_INT + 1, 10**40]
)
def test_an_expected_total_that_is_not_a_whole_number_of_cents_names_the_field(
    client, priced, value
):
    headers = sign_up(client)
    hold = hold_seats(client, headers, priced, count=1)
    body = {"card_token": card_token(client), "expected_total_cents": value}
    response = checkout(client, headers, hold["id"], body)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["field"] == "expected_total_cents"
    assert count(Payment) == 0


def test_the_hold_page_shows_and_charges_the_held_price(client, priced):
    page_sign_up(client)
    hold_id = hold_form(client, priced, quantity=1)
    set_price(priced, RAISED)
    page = text(client.get(path_of(card_form(client, hold_id))))
    assert "R$220.00" in page and "R$672.34" not in page
    form = pay_form(page)
    assert form["expected_total_cents"] == str(QUOTED)

    tampered = client.post(f"/holds/{hold_id}/checkout", data={**form, "expected_total_cents": "1"})
    assert path_of(tampered) == f"/holds/{hold_id}"
    [message] = alerts(client.get(path_of(tampered)))
    assert "cost R$220.00, not the R$0.01 shown: nothing was charged" in message
    assert count(Payment) == 0
    garbled = client.post(f"/holds/{hold_id}/checkout", data={**form, "expected_total_cents": "x"})
    assert "expected_total_cents must be a whole number" in alerts(client.get(path_of(garbled)))[0]

    paid = client.post(f"/holds/{hold_id}/checkout", data=form)
    assert path_of(paid).startswith("/orders/"), path_of(paid)
    assert db.session.scalar(select(Payment.amount_cents)) == QUOTED
