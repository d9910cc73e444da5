"""Rows the tests start from (users, partners, events, a sold ticket) and logging in to the
dashboard or the REST API as one of those users."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app
from flask.testing import FlaskClient
from flask_appbuilder.security.sqla.models import Role

from app.extensions import db
from app.models import (
    Customer,
    Event,
    EventSection,
    EventSpot,
    Order,
    Partner,
    PartnerStatus,
    SpotStatus,
    Ticket,
)
from app.models.base import utcnow
from app.services import events as event_service
from app.services.scoping import SYSTEM

PASSWORD = "Painel-Teste-2024"


def make_user(username: str, role: str, partner: Partner | None = None) -> Any:
    sm = current_app.appbuilder.sm
    user = sm.add_user(
        username,
        username.capitalize(),
        "Test",
        f"{username}@example.com",
        [sm.find_role(role)],
        password=PASSWORD,
    )
    assert user, f"could not create {username}"
    if partner is not None:
        user.partner_id = partner.id
        db.session.commit()
    return user


def make_partner(name: str, status: str = PartnerStatus.APPROVED.value) -> Partner:
    partner = Partner(
        name=name, status=status, fee_percent=10, fee_fixed_cents=100, contact_email="p@example.com"
    )
    db.session.add(partner)
    db.session.commit()
    return partner


def make_event(
    partner: Partner,
    name: str = "Concert",
    *,
    sections: int = 1,
    rows: tuple[str, str] = ("A", "B"),
    seats: int = 5,
    **fields: Any,
) -> Event:
    starts = utcnow() + dt.timedelta(days=30)
    event = Event(
        partner=partner,
        name=name,
        venue=fields.pop("venue", "Hall"),
        city=fields.pop("city", "Sao Paulo"),
        starts_at=starts,
        ends_at=starts + dt.timedelta(hours=3),
        currency="BRL",
        **fields,
    )
    for index in range(sections):
        event.sections.append(
            EventSection(name=f"Section {index + 1}", kind="seated", price_cents=10000)
        )
    db.session.add(event)
    db.session.commit()
    for section in event.sections:
        event_service.generate_spots(
            db.session, section.id, SYSTEM, first_row=rows[0], last_row=rows[1], seats_per_row=seats
        )
    return event


def record_sale(spot: EventSpot, price: int = 10000) -> Ticket:
    """A valid ticket for ``spot``, written straight to the database (a customer, an order, the
    ticket, the spot sold) without a hold, a payment or the ledger: for the rules about what a
    sold spot forbids, on events that need not be on sale. A purchase is ``shop.buy``."""
    customer = Customer(
        name="Buyer", email=f"buyer{spot.id}@example.com", email_confirmed_at=utcnow()
    )
    db.session.add(customer)
    db.session.flush()
    order = Order(
        customer_id=customer.id, event_id=spot.event_id, currency="BRL", total_cents=price
    )
    db.session.add(order)
    db.session.flush()
    ticket = Ticket(
        order_id=order.id,
        event_id=spot.event_id,
        section_id=spot.section_id,
        spot_id=spot.id,
        price_cents=price,
        currency="BRL",
        status="valid",
    )
    spot.status = SpotStatus.SOLD.value
    db.session.add(ticket)
    db.session.commit()
    return ticket


class PartnerActor:
    """A partner's user, for calling services directly in tests."""

    def __init__(self, partner: Partner) -> None:
        self.roles = [Role(name="Partner")]
        self.partner_id = partner.id
        self.is_authenticated = True


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> FlaskClient:
    response = client.post(
        "/login/", data={"username": username, "password": password}, follow_redirects=False
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


def api_token(client: FlaskClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db"},
    )
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}
