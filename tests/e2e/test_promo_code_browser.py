"""A customer types a promo code on the event page, sees the discounted price, holds two places,
sees gross, discount and total, pays by card and the order shows the discounted total. Real
Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.extensions import db
from app.models import Payment, PromoCode, Ticket
from tests.support.browser import pay_by_card_in_browser, sign_up_in_browser
from tests.support.builders import make_event, make_partner


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
def test_a_customer_buys_with_a_promo_code_and_pays_the_discounted_total(
    live_server: str, browser_page: Page
):
    event_id = _event_with_code()
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
