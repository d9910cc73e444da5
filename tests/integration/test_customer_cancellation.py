"""A customer cancels their own paid order for a full refund while the event's refund window is
open; after it closes, or where the event takes no cancellations, the answer says why."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import LedgerTransaction, Order, Payment, Ticket, local_time
from tests.support.builders import login, make_event, make_partner, make_user
from tests.support.shop import buy, sign_up


@pytest.fixture
def event():
    event = make_event(make_partner("Aurora"), rows=("A", "B"), seats=5, refund_window_hours=48)
    event.publish()
    db.session.commit()
    return event


def test_a_customer_cancels_within_the_window_and_is_refunded_in_full(client, event):
    headers = sign_up(client)
    order = buy(client, event, buyer=headers)
    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["result"]["status"] == "refunded"
    db.session.expire_all()
    assert db.session.get(Order, order["id"]).status == "refunded"
    payment = db.session.scalars(select(Payment).where(Payment.order_id == order["id"])).one()
    assert payment.status == "refunded"
    assert {t.status for t in db.session.scalars(select(Ticket))} == {"revoked"}
    kinds = db.session.scalars(select(LedgerTransaction.kind).order_by(LedgerTransaction.id))
    assert list(kinds) == ["capture", "refund"]
    # Asking twice refunds once.
    again = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=headers)
    assert again.status_code == 200
    refunds = (
        select(func.count())
        .select_from(LedgerTransaction)
        .where(LedgerTransaction.kind == "refund")
    )
    assert db.session.scalar(refunds) == 1


def test_after_the_window_closes_the_order_stays_paid(client, event):
    headers = sign_up(client)
    order = buy(client, event, buyer=headers)
    event = db.session.get(type(event), event.id)
    event.refund_window_hours = 24 * 60  # the deadline is now in the past
    db.session.commit()
    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=headers)
    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "refund_window_closed"
    # The venue's time with its offset (São Paulo's), in the message too.
    deadline = event.starts_at - dt.timedelta(hours=24 * 60)
    assert body["deadline"] == local_time.iso_local(deadline, "America/Sao_Paulo")
    assert body["deadline"].endswith("-03:00")
    assert local_time.format_local(deadline, "America/Sao_Paulo", "en") in body["message"]
    db.session.expire_all()
    assert db.session.get(Order, order["id"]).status == "paid"


def test_an_event_without_a_window_takes_no_cancellations(client, event):
    headers = sign_up(client)
    order = buy(client, event, buyer=headers)
    event = db.session.get(type(event), event.id)
    event.refund_window_hours = None
    db.session.commit()
    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=headers)
    assert response.status_code == 409
    assert response.get_json()["error"] == "refund_window_closed"


def test_another_customers_order_cannot_be_cancelled(client, event):
    order = buy(client, event)
    other = sign_up(client, "bia@example.com", "Bia")
    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=other)
    assert response.status_code == 404
    db.session.expire_all()
    assert db.session.get(Order, order["id"]).status == "paid"


def test_the_order_page_offers_cancellation_only_while_the_window_is_open(client, event):
    order = buy(client, event, buyer=sign_up(client))
    client.post("/login/", data={"username": "ana@example.com", "password": "Ingresso-Azul-77"})
    page = client.get(f"/orders/{order['id']}").get_data(as_text=True)
    assert "Cancel this order for a full refund" in page
    done = client.post(f"/orders/{order['id']}/cancel", follow_redirects=True)
    assert "Your order is cancelled" in done.get_data(as_text=True)
    page = client.get(f"/orders/{order['id']}").get_data(as_text=True)
    assert "Cancel this order" not in page and "refunded" in page


def test_the_order_page_hides_cancellation_once_the_window_closed(client, event):
    order = buy(client, event, buyer=sign_up(client))
    event = db.session.get(type(event), event.id)
    event.refund_window_hours = 24 * 60
    db.session.commit()
    client.post("/login/", data={"username": "ana@example.com", "password": "Ingresso-Azul-77"})
    page = client.get(f"/orders/{order['id']}").get_data(as_text=True)
    assert "Cancel this order" not in page
    refused = client.post(f"/orders/{order['id']}/cancel", follow_redirects=True)
    assert "Cancellations closed on" in refused.get_data(as_text=True)


def test_a_charged_back_order_cannot_be_cancelled_for_a_refund(client, event):
    from app.models.base import utcnow
    from app.services import refunds

    headers = sign_up(client)
    order = buy(client, event, buyer=headers)
    payment = db.session.scalars(select(Payment).where(Payment.order_id == order["id"])).one()
    refunds.record_chargeback(db.session, payment.id, "fraudulent", utcnow())
    db.session.commit()
    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=headers)
    assert response.status_code == 409
    assert "charged back" in response.get_json()["message"]


def test_a_refund_window_beyond_a_year_is_refused_at_its_field(client, event):
    make_user("alice", "Partner", event.partner)
    login(client, "alice")
    response = client.post(
        f"/eventview/edit/{event.id}",
        data={
            "name": event.name, "venue": event.venue, "city": event.city,
            "starts_at": event.starts_at.strftime("%Y-%m-%dT%H:%M"), "currency": "BRL",
            "refund_window_hours": "2000000000",
        },
    )  # fmt: skip
    assert "The refund window is 0 to" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(type(event), event.id).refund_window_hours == 48
