"""A partner (or the platform) refunds a paid order: the card is refunded once, the tickets are
revoked, the seats go back on sale, and the ledger records it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from app.extensions import db
from app.models import EventSpot, Order, OrderStatus, Payment, PaymentStatus, SpotStatus, Ticket
from app.services import ledger
from tests.support.builders import login, make_partner, make_user
from tests.support.shop import buy, sign_up


@pytest.fixture
def paid_order(client, on_sale):
    headers = sign_up(client)
    order = buy(client, on_sale, buyer=headers)
    client.get("/logout/")
    make_user("alice", "Partner", on_sale.partner)
    return {"order_id": order["id"], "event": on_sale, "customer": headers}


def _refunded_at_acquirer() -> int:
    return db.session.scalar(
        text("SELECT COALESCE(SUM(refunded_cents), 0) FROM sim_acquirer_charge")
    )


def test_a_partner_refunds_its_order(app, client, paid_order):
    login(client, "alice")
    page = client.post(
        f"/orderview/action/refund/{paid_order['order_id']}", follow_redirects=True
    ).get_data(as_text=True)
    assert "1 order(s) refunded." in page
    order = db.session.get(Order, paid_order["order_id"])
    assert order.status == OrderStatus.REFUNDED
    assert {t.status for t in order.tickets} == {"revoked"}
    assert order.payments[0].status == PaymentStatus.REFUNDED
    assert _refunded_at_acquirer() == order.total_cents
    spots = db.session.scalars(
        select(EventSpot).where(EventSpot.id.in_([t.spot_id for t in order.tickets]))
    )
    assert {s.status for s in spots} == {SpotStatus.AVAILABLE}
    partner = paid_order["event"].partner
    assert ledger.partner_balance(db.session, partner, "BRL") == 0
    fee_revenue = ledger.account(db.session, ledger.FEE_REVENUE)
    assert ledger.balance(db.session, fee_revenue, "BRL") == 0
    customer = app.test_client()  # no dashboard session: the customer's own token
    history = customer.get("/api/v1/orders/", headers=paid_order["customer"]).get_json()
    assert history["result"][0]["status"] == "refunded"


def test_refunding_twice_refunds_once(client, paid_order):
    login(client, "alice")
    client.post(f"/orderview/action/refund/{paid_order['order_id']}")
    again = client.post(f"/orderview/action/refund/{paid_order['order_id']}", follow_redirects=True)
    assert again.status_code == 200
    order = db.session.get(Order, paid_order["order_id"])
    assert _refunded_at_acquirer() == order.total_cents
    assert (
        db.session.scalar(select(func.count()).where(Payment.status == PaymentStatus.REFUNDED)) == 1
    )


def test_when_the_platform_keeps_its_fee_the_partner_bears_it(app, client, paid_order):
    app.config["REFUND_RETURNS_PLATFORM_FEE"] = False
    try:
        login(client, "alice")
        client.post(f"/orderview/action/refund/{paid_order['order_id']}")
    finally:
        app.config["REFUND_RETURNS_PLATFORM_FEE"] = True
    payment = db.session.scalars(select(Payment)).one()
    partner = paid_order["event"].partner
    assert ledger.partner_balance(db.session, partner, "BRL") == -payment.fee_cents
    fee_revenue = ledger.account(db.session, ledger.FEE_REVENUE)
    assert ledger.balance(db.session, fee_revenue, "BRL") == -payment.fee_cents


def test_a_cancelled_events_refunded_seats_are_not_sold_again(client, paid_order):
    event = paid_order["event"]
    event.cancel("Storm")
    db.session.commit()
    login(client, "alice")
    client.post(f"/orderview/action/refund/{paid_order['order_id']}")
    order = db.session.get(Order, paid_order["order_id"])
    spots = db.session.scalars(
        select(EventSpot).where(EventSpot.id.in_([t.spot_id for t in order.tickets]))
    )
    assert {s.status for s in spots} == {SpotStatus.BLOCKED}


def test_another_partner_cannot_see_or_refund_the_order(client, paid_order):
    other = make_partner("Other")
    make_user("bob", "Partner", other)
    login(client, "bob")
    assert client.get(f"/orderview/show/{paid_order['order_id']}").status_code == 404
    assert client.post(f"/orderview/action/refund/{paid_order['order_id']}").status_code == 404
    assert (
        "Order"
        not in client.get("/orderview/list/").get_data(as_text=True).split("Record Count")[-1]
        or db.session.get(Order, paid_order["order_id"]).status == OrderStatus.PAID
    )
    assert db.session.get(Order, paid_order["order_id"]).status == OrderStatus.PAID
    assert db.session.scalar(select(func.count()).where(Ticket.status == "valid")) == 2


def test_finance_reads_orders_and_the_ledger_but_cannot_refund(client, paid_order):
    make_user("fiona", "Finance")
    login(client, "fiona")
    assert client.get("/orderview/list/").status_code == 200
    ledger_page = client.get("/ledgertransactionview/list/").get_data(as_text=True)
    assert "capture:payment:" in ledger_page
    assert client.post(f"/orderview/action/refund/{paid_order['order_id']}").status_code == 403
    assert db.session.get(Order, paid_order["order_id"]).status == OrderStatus.PAID


def test_a_partner_sees_only_its_own_ledger_transactions(client, paid_order):
    other = make_partner("Other")
    make_user("bob", "Partner", other)
    login(client, "alice")
    assert "capture:payment:" in client.get("/ledgertransactionview/list/").get_data(as_text=True)
    client.get("/logout/")
    login(client, "bob")
    assert "capture:payment:" not in client.get("/ledgertransactionview/list/").get_data(
        as_text=True
    )


NBSP = "\u00a0"  # R$ and its number stay together (app/models/money.py)
PT_BR = {"Accept-Language": "pt-BR"}  # a Brazilian reader (the suite's client reads English)


def _balance_row(page: str, partner_id: int) -> list[str]:
    import re

    row = re.search(rf'<tr data-partner="{partner_id}">(.*?)</tr>', page, re.S)
    assert row is not None, page[-2000:]
    return re.findall(r"<td>(?:<strong>)?([^<]*)", row.group(1))


def test_balances_show_sales_fees_refunds_and_the_balance(client, paid_order):
    partner = paid_order["event"].partner
    login(client, "alice")
    page = client.get("/balances/", headers=PT_BR).get_data(as_text=True)
    assert _balance_row(page, partner.id)[2:] == [
        f"R${NBSP}{amount}" for amount in (
            "200,00", "0,00", "22,00", "0,00", "0,00", "0,00", "0,00", "178,00",
            "178,00", "0,00", "0,00", "0,00",  # pending: not settled, not available
        )
    ]  # fmt: skip
    client.post(f"/orderview/action/refund/{paid_order['order_id']}")
    page = client.get("/balances/", headers=PT_BR).get_data(as_text=True)
    assert _balance_row(page, partner.id)[2:] == [
        f"R${NBSP}{amount}" for amount in (
            "200,00", "0,00", "22,00", "200,00", "0,00", "22,00", "0,00", "0,00",
            "0,00", "0,00", "0,00", "0,00",
        )
    ]  # fmt: skip
    statement = ledger.partner_statements(db.session, [partner.id])[0]
    assert statement["balance"] == (
        statement["sales"] - statement["discounts"] - statement["fees"] - statement["refunds"]
        - statement["chargebacks"] + statement["fees_returned"] - statement["payouts"]
    )  # fmt: skip


def test_a_partner_sees_only_its_own_balance_and_finance_sees_all(client, paid_order):
    other = make_partner("Other")
    make_user("bob", "Partner", other)
    make_user("fiona", "Finance")
    partner_id = paid_order["event"].partner.id
    login(client, "bob")
    assert f'data-partner="{partner_id}"' not in client.get("/balances/").get_data(as_text=True)
    client.get("/logout/")
    login(client, "fiona")
    assert f'data-partner="{partner_id}"' in client.get("/balances/").get_data(as_text=True)
