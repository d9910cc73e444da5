"""A ticket used at the gate is never refunded by the customer's self-service: cancelling the
order answers 409 ``ticket_used`` (API) or says why (shop), and nothing is refunded, revoked or
put back on sale, whether the entry is in the database or still in Redis waiting for the scan
log's flush. The partner and the platform may still refund it, warned with the entry; its seat
is then withdrawn from sale, as its holder is inside."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import delete, func, select

from app.extensions import db
from app.models import (
    CheckIn,
    CheckinEntry,
    EventSpot,
    LedgerTransaction,
    Order,
    OrderStatus,
    PaymentRefund,
    SpotStatus,
    Ticket,
    TicketStatus,
)
from app.services import checkin
from tests.support.builders import login, make_partner, make_user
from tests.support.gate import device, open_event, result, scan
from tests.support.pages import alerts, text
from tests.support.shop import CUSTOMER_PASSWORD, buy, sign_up


@pytest.fixture
def partner():
    return make_partner("Aurora")


@pytest.fixture
def event(partner):
    """Doors open an hour ago, the show in 30 days, cancellations until 48 hours before it."""
    return open_event(partner, refund_window_hours=48)


@pytest.fixture
def entered(client, store, partner, event):
    """Ana's paid order of two seats, the first ticket admitted at the North gate (on the store
    the test runs on: with Redis, the entry only there until the scan log is flushed, as when
    the database could not be written at the scan)."""
    headers = sign_up(client)
    order = buy(client, event, buyer=headers)
    ticket = order["tickets"][0]
    assert (
        result(scan(client, device(partner, event), ticket["code"], gate="North"))["result"]
        == "valid"
    )
    if store == "redis":  # written through to the database: undone, the queue keeps the scan
        db.session.execute(delete(CheckinEntry))
        db.session.execute(delete(CheckIn))
        db.session.commit()
    in_database = db.session.scalar(select(func.count()).select_from(CheckinEntry))
    assert in_database == (1 if store == "database" else 0)  # Redis: not flushed yet
    return {"order": order, "ticket": ticket, "headers": headers}


def nothing_refunded(order_id: int) -> None:
    db.session.expire_all()
    order = db.session.get(Order, order_id)
    assert order.status == OrderStatus.PAID
    assert {t.status for t in order.tickets} == {TicketStatus.VALID}
    assert {t.spot.status for t in order.tickets} == {SpotStatus.SOLD}
    assert db.session.scalar(select(func.count()).select_from(PaymentRefund)) == 0
    kinds = db.session.scalars(select(LedgerTransaction.kind))
    assert "refund" not in set(kinds)


def test_the_customer_api_refuses_to_cancel_an_order_with_a_used_ticket(client, entered):
    order, ticket = entered["order"], entered["ticket"]
    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=entered["headers"])
    assert response.status_code == 409, response.get_json()
    body = response.get_json()
    assert body["error"] == "ticket_used"
    [used] = body["tickets"]
    assert (used["id"], used["gate"]) == (ticket["id"], "North")
    assert used["entered_at"].endswith("Z") and ticket["spot"] in used["seat"]
    assert f"ticket {ticket['id']}" in body["message"] and "North" in body["message"]
    nothing_refunded(order["id"])
    # Still refused once the scan log reached the database.
    checkin.flush_scan_log(db.session)
    again = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=entered["headers"])
    assert again.status_code == 409 and again.get_json()["error"] == "ticket_used"
    nothing_refunded(order["id"])


def test_the_order_page_offers_no_cancellation_once_a_ticket_was_used(client, entered):
    order_id = entered["order"]["id"]
    login(client, "ana@example.com", CUSTOMER_PASSWORD)
    page = text(client.get(f"/orders/{order_id}"))
    assert "Cancel this order" not in page
    assert "was used at the gate" in page and "at North" in page
    refused = client.post(f"/orders/{order_id}/cancel", follow_redirects=True)
    [message] = alerts(refused)
    assert message.startswith("Used at the gate: ticket") and "contact the organiser" in message
    nothing_refunded(order_id)


def test_an_order_whose_tickets_were_not_used_is_still_cancelled(client, store, partner, event):
    headers = sign_up(client)
    order = buy(client, event, buyer=headers)
    other = buy(client, event)  # someone else's ticket used meanwhile
    assert (
        result(scan(client, device(partner, event), other["tickets"][0]["code"]))["result"]
        == "valid"
    )
    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["result"]["status"] == "refunded"


def test_the_partner_refunds_a_used_ticket_warned_of_its_entry(client, entered, partner):
    order, ticket = entered["order"], entered["ticket"]
    make_user("alice", "Partner", partner)
    login(client, "alice")
    form = text(client.get(f"/orderview/refund_tickets/{order['id']}"))
    warning = re.search(r'alert-warning">.*?&times;</button>\s*(.*?)\s*</div>', form, re.S)
    assert warning, form
    assert f"ticket {ticket['id']}" in warning[1] and "at North" in warning[1]
    assert "USED: ticket" in form  # the box of the used ticket says so

    done = client.post(
        f"/orderview/refund_tickets/{order['id']}",
        data={"tickets": [str(ticket["id"])]},
        follow_redirects=True,
    )
    page = text(done)
    assert f"1 ticket(s) of order {order['id']} refunded." in page
    assert "already used at the gate" in page and f"ticket {ticket['id']}" in page
    db.session.expire_all()
    refunded = db.session.get(Ticket, ticket["id"])
    assert refunded.status == TicketStatus.REVOKED
    # Its holder is inside: the seat is withdrawn, not sold again; the unused one's goes back.
    assert refunded.spot.status == SpotStatus.BLOCKED

    rest = client.post(f"/orderview/action/refund/{order['id']}", follow_redirects=True)
    assert "1 order(s) refunded." in text(rest)
    assert "already used" not in text(rest)  # the used ticket was refunded already
    spots = db.session.scalars(select(EventSpot).where(EventSpot.id.in_(
        [t.spot_id for t in db.session.get(Order, order["id"]).tickets]))).all()  # fmt: skip
    assert sorted(s.status for s in spots) == [SpotStatus.AVAILABLE, SpotStatus.BLOCKED]


def test_an_admins_full_refund_of_a_used_order_warns_with_the_entry(client, entered):
    order, ticket = entered["order"], entered["ticket"]
    make_user("root", "Admin")
    login(client, "root")
    done = client.post(f"/orderview/action/refund/{order['id']}", follow_redirects=True)
    page = text(done)
    assert "1 order(s) refunded." in page
    assert f"Order {order['id']} refunded: already used at the gate: ticket {ticket['id']}" in page
    db.session.expire_all()
    assert db.session.get(Order, order["id"]).status == OrderStatus.REFUNDED


def test_while_redis_is_unreachable_the_databases_entries_still_refuse(
    client, app, store, entered, monkeypatch
):
    if store != "redis":
        pytest.skip("concerns the Redis store")
    checkin.flush_scan_log(db.session)
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens
    order = entered["order"]
    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=entered["headers"])
    assert response.status_code == 409 and response.get_json()["error"] == "ticket_used"
    nothing_refunded(order["id"])
