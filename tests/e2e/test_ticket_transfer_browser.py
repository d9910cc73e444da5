"""A buyer renames a ticket's holder and transfers another ticket to a friend from the order
page; the order then shows the transferred ticket without its code. Real Chromium."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.extensions import db
from app.models import Customer, Ticket
from app.services import customers
from tests.support.browser import pay_by_card_in_browser, sign_up_in_browser
from tests.support.builders import make_event, make_partner
from tests.support.shop import CUSTOMER_PASSWORD

SCREENSHOT = "/tmp/e2e_ticket_transfer.png"  # noqa: S108 - for a person to look at


@pytest.mark.browser
def test_a_buyer_renames_one_ticket_and_transfers_the_other(
    app: Flask, live_server: str, browser_page: Page
):
    event = make_event(make_partner("Aurora"), "Samba de Roda", rows=("A", "A"), seats=4)
    event.publish()
    db.session.commit()
    with app.test_request_context():
        customers.sign_up(
            db.session, app.appbuilder.sm, "Bruno Lima", "bruno@example.com", CUSTOMER_PASSWORD
        )
    db.session.remove()
    page = browser_page
    sign_up_in_browser(page, live_server, "ana@example.com")
    page.goto(f"{live_server}/events/{event.id}")
    page.get_by_label("Best available").select_option("2")
    page.get_by_role("button", name="Hold", exact=True).click()
    expect(page).to_have_url(re.compile(r"/holds/\d+$"))
    pay_by_card_in_browser(page)
    expect(page.locator(".flash-success")).to_contain_text("Payment approved")
    expect(page.locator(".ticket svg")).to_have_count(2)

    # The first ticket: another holder's name, the same code.
    page.get_by_role("link", name="Change the holder or transfer").first.click()
    page.get_by_label("Holder's name").fill("Carla Dias")
    page.get_by_role("button", name="Change the holder").click()
    expect(page.locator(".flash-success")).to_contain_text("holder is changed")
    expect(page.locator(".ticket .holder")).to_have_text("Carla Dias")

    # The second ticket, to Bruno.
    page.get_by_role("link", name=re.compile("Order #")).click()
    page.get_by_role("link", name="Change the holder or transfer").nth(1).click()
    page.get_by_label("Transfer to (the customer's e-mail)").fill("bruno@example.com")
    page.get_by_role("button", name="Transfer this ticket").click()
    expect(page.locator(".flash-success")).to_contain_text("Ticket transferred to Bruno Lima")
    expect(page.locator(".ticket.transferred")).to_contain_text("Transferred to Bruno Lima")
    expect(page.locator(".ticket svg")).to_have_count(1)
    page.screenshot(path=SCREENSHOT, full_page=True)

    db.session.remove()
    bruno = db.session.scalar(select(Customer.id).where(Customer.email == "bruno@example.com"))
    rows = db.session.scalars(select(Ticket).order_by(Ticket.id)).all()
    assert [(t.status, t.holder_name, t.owner_id) for t in rows] == [
        ("valid", "Carla Dias", None),
        ("transferred", "Ana Souza", None),
        ("valid", "Bruno Lima", bruno),
    ]
    assert rows[1].replaced_by_id == rows[2].id
