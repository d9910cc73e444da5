"""The cart in a real browser (#19 point 4): a customer holds seats in one section, goes back to
the event page, sees them there with the time left ticking, adds seats from another section,
takes one out and pays for the rest in one payment. Real Chromium."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.extensions import db
from app.models import Order, Ticket
from tests.support.browser import pay_by_card_in_browser, sign_up_in_browser
from tests.support.builders import make_event, make_partner

SCREENSHOT = "/tmp/e2e_cart.png"  # noqa: S108 - for a person to look at


@pytest.mark.browser
def test_a_customer_fills_a_cart_from_two_sections_and_pays_once(
    app: Flask, live_server: str, browser_page: Page
):
    event = make_event(make_partner("Aurora"), "Forró", sections=2, rows=("A", "A"), seats=4)
    event.publish()
    db.session.commit()
    db.session.remove()
    page = browser_page
    sign_up_in_browser(page, live_server, "ana@example.com")
    page.goto(f"{live_server}/events/{event.id}")
    hold_forms = page.locator("form[action$='/hold']")
    hold_forms.nth(0).get_by_label("Best available").select_option("2")
    hold_forms.nth(0).get_by_role("button", name="Hold", exact=True).click()
    expect(page).to_have_url(re.compile(r"/holds/\d+$"))
    cart_url = page.url

    # Back to the event: the cart is there, its clock running.
    page.get_by_role("link", name="Add seats from other sections").click()
    cart = page.locator("section.cart")
    expect(cart).to_contain_text("Section 1")
    clock = cart.locator(".cart-countdown")
    first = clock.inner_text()
    expect(clock).not_to_have_text(first, timeout=3000)  # it ticks
    hold_forms.nth(1).get_by_label("Best available").select_option("1")
    hold_forms.nth(1).get_by_role("button", name="Hold", exact=True).click()
    expect(page).to_have_url(cart_url)  # the same hold: the cart
    rows = page.locator("table.sections tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#total")).to_have_text("R$300.00")

    # One of the first section's seats out again.
    rows.nth(0).get_by_role("button", name="Remove").click()
    expect(page.locator(".flash-success")).to_contain_text("taken out of your cart")
    expect(rows).to_have_count(2)
    expect(page.locator("#total")).to_have_text("R$200.00")

    pay_by_card_in_browser(page)
    expect(page.locator(".flash-success")).to_contain_text("Payment approved")
    expect(page.locator(".ticket svg")).to_have_count(2)
    page.screenshot(path=SCREENSHOT, full_page=True)

    db.session.remove()
    [order] = db.session.scalars(select(Order)).all()
    assert order.total_cents == 20000 and len(order.payments) == 1
    sections = sorted(t.section.name for t in db.session.scalars(select(Ticket)))
    assert sections == ["Section 1", "Section 2"]
