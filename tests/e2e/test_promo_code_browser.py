"""A customer types a promo code on the event page, sees the discounted price, holds two places,
sees gross, discount and total, pays by card, the order shows the discounted total, and one of
the tickets is transferred to a friend, keeping its discount (#19's Playwright test: a purchase
with a promo code and a transfer). Real Chromium."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.extensions import db
from app.models import Customer, Payment, PromoCode, Ticket
from app.services import customers
from tests.support.browser import pay_by_card_in_browser, sign_up_in_browser
from tests.support.builders import make_event, make_partner
from tests.support.shop import CUSTOMER_PASSWORD


def _event_with_code() -> int:
    event = make_event(make_partner("Aurora"), "Forró na Praça", rows=("A", "B"), seats=6)
    event.publish()
    db.session.add(PromoCode(partner_id=event.partner_id, event=event, code="FORRO25",
                             kind="percent", value=25))  # fmt: skip
    db.session.commit()
    event_id = event.id
    db.session.remove()
    return event_id


@pytest.mark.browser
def test_a_customer_buys_with_a_promo_code_and_transfers_a_ticket(
    app: Flask, live_server: str, browser_page: Page
):
    event_id = _event_with_code()
    with app.test_request_context():
        customers.sign_up(
            db.session, app.appbuilder.sm, "Bruno Lima", "bruno@example.com", CUSTOMER_PASSWORD
        )
    db.session.remove()
    page = browser_page
    sign_up_in_browser(page, live_server, "ana@example.com")
    page.goto(f"{live_server}/events/{event_id}")
    page.get_by_label("Promo code").fill("forro25")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".promo-applied")).to_contain_text("FORRO25")
    expect(page.locator(".promo-price").first).to_have_text("R$75.00")
    page.get_by_label("Best available").select_option("2")
    page.get_by_role("button", name="Hold", exact=True).click()
    expect(page).to_have_url(re.compile(r"/holds/\d+$"))
    expect(page.locator("#gross")).to_have_text("R$200.00")
    expect(page.locator("#discount")).to_have_text("−R$50.00")
    expect(page.locator("#total")).to_have_text("R$150.00")
    pay_by_card_in_browser(page)
    expect(page.locator(".flash-success")).to_contain_text("Payment approved")
    expect(page.locator("body")).to_contain_text("R$150.00")
    db.session.remove()
    payment = db.session.scalars(select(Payment)).one()
    assert (payment.status, payment.amount_cents) == ("captured", 15000)
    tickets = db.session.scalars(select(Ticket)).all()
    assert sorted((t.price_cents, t.discount_cents) for t in tickets) == [(7500, 2500)] * 2

    # One ticket to Bruno: a new code, the same price and discount (still one use of the code).
    page.get_by_role("link", name="Change the holder or transfer").nth(1).click()
    page.get_by_label("Transfer to (the customer's e-mail)").fill("bruno@example.com")
    page.get_by_role("button", name="Transfer this ticket").click()
    expect(page.locator(".flash-success")).to_contain_text("Ticket transferred to Bruno Lima")
    db.session.remove()
    bruno = db.session.scalar(select(Customer.id).where(Customer.email == "bruno@example.com"))
    rows = db.session.scalars(select(Ticket).order_by(Ticket.id)).all()
    assert [(t.status, t.owner_id, t.price_cents, t.discount_cents) for t in rows] == [
        ("valid", None, 7500, 2500),
        ("transferred", None, 7500, 2500),
        ("valid", bruno, 7500, 2500),
    ]
    assert rows[2].promo_code_id == rows[1].promo_code_id is not None
