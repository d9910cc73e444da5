"""A customer finds an event, picks two seats on the seat map, pays by card and sees the QR
tickets; a declined card shows the reason and keeps the seats held. Real Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.extensions import db
from app.models import EventSpot, Hold, HoldStatus, Payment, SpotStatus
from app.models.base import utcnow
from tests.support.browser import pay_by_card_in_browser, sign_up_in_browser
from tests.support.builders import make_event, make_partner

SCREENSHOT = "/tmp/e2e_tickets.png"  # noqa: S108 - for a person to look at


def _event_on_sale() -> int:
    event = make_event(make_partner("Aurora"), "Samba de Roda", rows=("A", "B"), seats=6)
    event.publish()
    db.session.commit()
    event_id = event.id
    db.session.remove()
    return event_id


def _choose_seats_3_and_4(page: Page, base: str) -> None:
    """Find the event, open its seat map and choose seats 3 and 4 (not held yet)."""
    page.goto(base + "/")
    page.get_by_role("searchbox", name="Search").fill("samba")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=re.compile("Samba de Roda")).click()
    page.get_by_role("button", name="Pick seats").click()
    page.locator("#seatmap-grid button.seat", has_text=re.compile(r"^3$")).first.click()
    page.locator("#seatmap-grid button.seat", has_text=re.compile(r"^4$")).first.click()


def _pick_two_seats(page: Page, base: str) -> None:
    _choose_seats_3_and_4(page, base)
    expect(page.locator("#seatmap-count")).to_have_text("2")
    page.get_by_role("button", name="Hold these seats").click()
    expect(page).to_have_url(re.compile(r"/holds/\d+$"))
    expect(page.locator("#countdown")).to_contain_text("min")


@pytest.mark.browser
def test_a_customer_buys_two_seats_and_sees_qr_tickets(live_server: str, browser_page: Page):
    _event_on_sale()
    page = browser_page
    sign_up_in_browser(page, live_server, "ana@example.com")
    _pick_two_seats(page, live_server)
    pay_by_card_in_browser(page)
    expect(page.locator(".flash-success")).to_contain_text("Payment approved")
    expect(page.locator(".ticket")).to_have_count(2)
    expect(page.locator(".ticket svg")).to_have_count(2)
    expect(page.locator(".ticket h2").first).to_contain_text("A-3")
    page.screenshot(path=SCREENSHOT, full_page=True)
    page.get_by_role("link", name="My orders").click()
    expect(page.locator(".order")).to_have_count(1)
    expect(page.locator(".order")).to_contain_text("paid")
    db.session.remove()
    sold = db.session.scalars(select(EventSpot.label).where(EventSpot.status == SpotStatus.SOLD))
    assert sorted(sold) == ["A-3", "A-4"]
    payment = db.session.scalars(select(Payment)).one()
    assert payment.card_last4 == "4242" and payment.status == "captured"


@pytest.mark.browser
def test_a_declined_card_shows_the_reason_and_keeps_the_hold(live_server: str, browser_page):
    _event_on_sale()
    page = browser_page
    sign_up_in_browser(page, live_server, "bia@example.com")
    _pick_two_seats(page, live_server)
    pay_by_card_in_browser(page, "4000000000000002")
    expect(page.locator(".flash-error")).to_contain_text("Your card was declined.")
    expect(page).to_have_url(re.compile(r"/holds/\d+$"))
    expect(page.locator("#countdown")).to_be_visible()
    db.session.remove()
    hold = db.session.scalars(select(Hold)).one()
    assert hold.status == HoldStatus.ACTIVE
    assert len(hold.spots) == 2
    # A bad field is named before anything reaches the payment code.
    page.get_by_label("Card number").fill("4242424242424241")
    page.get_by_label("Expiry month").fill("12")
    page.get_by_label("Expiry year").fill(str(utcnow().year + 2))
    page.get_by_label("CVC").fill("123")
    page.get_by_label("Name on card").fill("Bia")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator('.field-error[data-for="number"]')).to_have_text(
        "The card number is not valid."
    )


@pytest.mark.browser
def test_a_customer_picks_a_half_price_type_for_one_seat_on_the_map(
    live_server: str, browser_page: Page
):
    from app.models import Ticket, TicketType

    event = make_event(make_partner("Aurora"), "Samba de Roda", rows=("A", "B"), seats=6)
    section = event.sections[0]
    db.session.add_all(
        [
            TicketType(section=section, name="Inteira", kind="full", price_cents=10000),
            TicketType(section=section, name="Meia-entrada", kind="half", price_cents=5000),
        ]
    )
    event.publish()
    db.session.commit()
    db.session.remove()
    page = browser_page
    sign_up_in_browser(page, live_server, "ana@example.com")
    _choose_seats_3_and_4(page, live_server)
    expect(page.locator("#seatmap-types select")).to_have_count(2)
    page.locator("#seatmap-types select").nth(1).select_option(label="Meia-entrada")
    page.get_by_role("button", name="Hold these seats").click()
    expect(page).to_have_url(re.compile(r"/holds/\d+$"))
    pay_by_card_in_browser(page)
    expect(page.locator(".ticket")).to_have_count(2)
    expect(page.locator(".ticket .ticket-type")).to_have_text(["Inteira", "Meia-entrada"])
    db.session.remove()
    sold = db.session.execute(
        select(EventSpot.label, Ticket.price_cents)
        .join(Ticket, Ticket.spot_id == EventSpot.id)
        .order_by(EventSpot.label)
    ).all()
    assert [tuple(row) for row in sold] == [("A-3", 10000), ("A-4", 5000)]
