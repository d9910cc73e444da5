"""A customer's purchase through the JSON API, step by step (``sign_up``, ``card_token``,
``hold_seats``, ``pay``) or whole (``buy``), with the simulated acquirer's test cards."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from app.extensions import db
from app.models import Customer, Event, Hold, Payment
from app.models.base import utcnow

APPROVED = "4242424242424242"
DECLINED = "4000000000000002"
NO_FUNDS = "4000000000009995"
PROCESSING_ERROR = "4000000000000119"
CUSTOMER_PASSWORD = "Ingresso-Azul-77"


def sign_up(
    client: FlaskClient,
    email: str = "ana@example.com",
    name: str = "Ana Souza",
    *,
    confirmed: bool = True,
) -> dict[str, str]:
    """A new customer account; returns its API headers (a bearer token). ``confirmed``: the
    address counts as confirmed, as if the sign-up's link was followed (mails about the
    customer's orders are then not held); False leaves it unconfirmed."""
    response = client.post(
        "/api/v1/customers/", json={"name": name, "email": email, "password": CUSTOMER_PASSWORD}
    )
    assert response.status_code == 201, response.get_json()
    if confirmed:
        confirm_email(client.application, response.get_json()["id"])
    token = client.post(
        "/api/v1/security/login",
        json={"username": email, "password": CUSTOMER_PASSWORD, "provider": "db"},
    ).get_json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def confirm_email(app: Flask, customer_id: int) -> None:
    """The customer's address confirmed, straight in the database (in a context of its own:
    callers may be in another thread, or outside any app context)."""
    with app.app_context():
        db.session.execute(
            update(Customer).where(Customer.id == customer_id).values(email_confirmed_at=utcnow())
        )
        db.session.commit()


def card_fields(**changes: object) -> dict[str, object]:
    """What a card form sends the simulated acquirer for the approved test card, with
    ``changes``."""
    fields = {
        "number": APPROVED,
        "exp_month": 12,
        "exp_year": utcnow().year + 2,
        "cvc": "123",
        "holder_name": "Ana Souza",
    }
    return fields | changes


def card_token(client: FlaskClient, number: str = APPROVED) -> str:
    """A single-use token of the card ``number`` from the simulated acquirer."""
    response = client.post("/sim-acquirer/v1/tokens", json=card_fields(number=number))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["token"]


def hold_seats(
    client: FlaskClient, headers: dict[str, str], event: Event, count: int = 2
) -> dict[str, Any]:
    """Holds the first ``count`` spots of the event's first section; returns the hold."""
    spot_ids = [s.id for s in event.sections[0].spots[:count]]
    response = client.post(
        "/api/v1/holds/", json={"event_id": event.id, "spot_ids": spot_ids}, headers=headers
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["result"]


def pay(
    client: FlaskClient, headers: dict[str, str], hold_id: int, token: str, key: str | None = None
) -> Any:
    """The checkout of a hold with a card token (a new idempotency key unless ``key``); returns
    the response, whatever it answered."""
    return client.post(
        f"/api/v1/holds/{hold_id}/checkout",
        json={"card_token": token},
        headers={**headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )


def buy(
    client: FlaskClient,
    event: Event,
    quantity: int = 2,
    *,
    buyer: dict[str, str] | None = None,
    section: int = 0,
) -> dict[str, Any]:
    """A customer holds the best ``quantity`` places of the event's first section (or its
    ``section``-th, from 0) and pays with the approved card; returns the paid order as the
    checkout answered it (its tickets carry their codes). ``buyer``: the customer's API
    headers; by default a new customer, Ana Souza at an address of her own, so every call is
    another buyer."""
    headers = buyer or sign_up(client, f"{uuid.uuid4().hex[:12]}@example.com")
    section_id = event.sections[section].id
    hold = client.post(
        "/api/v1/holds/",
        json={"event_id": event.id, "section_id": section_id, "quantity": quantity},
        headers=headers,
    )
    assert hold.status_code == 201, hold.get_json()
    paid = pay(client, headers, hold.get_json()["result"]["id"], card_token(client))
    assert paid.status_code == 201, paid.get_json()
    return paid.get_json()["result"]


def payment_of(order: dict[str, Any]) -> Payment:
    """The payment of an order ``buy`` returned (it pays once)."""
    [payment] = order["payments"]
    return db.session.get(Payment, payment["id"])


def payment_figures(order: dict[str, Any]) -> dict[str, int]:
    """What the books say the payment of an order ``buy`` returned was: its amount, the
    platform's fee and the partner's net (the customer API shows the amount only)."""
    payment = payment_of(order)
    return {
        "amount_cents": payment.amount_cents,
        "fee_cents": payment.fee_cents,
        "net_cents": payment.net_cents,
    }


def expire(hold_id: int) -> None:
    """Move a hold's clock so that it expired a second ago."""
    row = db.session.get(Hold, hold_id)
    row.created_at = utcnow() - dt.timedelta(minutes=11)
    row.expires_at = utcnow() - dt.timedelta(seconds=1)
    for spot in row.spots:
        spot.held_until = row.expires_at
    db.session.commit()


def crowd(app: Flask, count: int, prefix: str = "fan") -> list[tuple[FlaskClient, dict[str, str]]]:
    """``count`` customers (``<prefix><n>@example.com``), each with a test client of its own and
    its API headers: buyers for a race on real connections, one thread each."""
    from app.services import customers

    sm = app.appbuilder.sm
    buyers = []
    for n in range(count):
        email = f"{prefix}{n}@example.com"
        customers.sign_up(db.session, sm, f"{prefix.title()} {n}", email, CUSTOMER_PASSWORD)
        client = app.test_client()
        token = client.post(
            "/api/v1/security/login",
            json={"username": email, "password": CUSTOMER_PASSWORD, "provider": "db"},
        ).get_json()["access_token"]
        buyers.append((client, {"Authorization": f"Bearer {token}"}))
    return buyers
