"""A buyer of a high-demand on-sale joins the waiting room, watches the page move on by itself
when their turn comes, and holds seats. Real Chromium, no script of ours on the waiting page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from flask import current_app
from playwright.sync_api import Page, expect

from app.extensions import db
from app.models import WaitingLine
from app.models.base import utcnow
from app.services import waiting_room
from tests.support.browser import sign_up_in_browser
from tests.support.builders import make_event, make_partner

PER_MINUTE = 60


@pytest.mark.browser
def test_the_waiting_page_lets_the_buyer_in_when_their_turn_comes(
    live_server: str, browser_page: Page
):
    event = make_event(make_partner("Arena"), "Big Night", rows=("A", "B"), seats=6)
    event.waiting_room_per_minute = PER_MINUTE
    event.publish()
    db.session.flush()
    # A crowd came first: the next buyer's turn is about five seconds away.
    step = waiting_room.interval_of(PER_MINUTE)
    burst = step * (current_app.config["WAITING_ROOM_BURST"] - 1)
    db.session.add(
        WaitingLine(event_id=event.id, next_slot=utcnow() + burst + dt.timedelta(seconds=5))
    )
    db.session.commit()
    event_id = event.id
    db.session.remove()

    page = browser_page
    sign_up_in_browser(page, live_server, "ana@example.com")
    page.goto(f"{live_server}/events/{event_id}")
    expect(page.locator(".waiting-room")).to_contain_text("waiting room")
    expect(page.get_by_role("button", name="Hold")).to_have_count(0)
    page.get_by_role("button", name="Join the line").click()

    expect(page).to_have_url(re.compile(rf"/events/{event_id}/queue$"))
    expect(page.locator(".waiting-room h2")).to_have_text("You are in line")
    ahead = int(page.locator("#ahead").inner_text())
    assert 1 <= ahead <= 5
    # shop.js counts the wait down; the page refreshes itself (meta refresh) when the turn is
    # due and sends the buyer to the seats.
    before = page.locator("#wait").inner_text()
    page.wait_for_timeout(1_200)
    assert page.locator("#wait").inner_text() != before
    expect(page).to_have_url(re.compile(rf"/events/{event_id}$"), timeout=12_000)
    expect(page.locator(".flash-success")).to_contain_text("It is your turn")
    expect(page.locator("#countdown")).to_contain_text("min")
    page.get_by_role("button", name="Hold").first.click()
    expect(page).to_have_url(re.compile(r"/holds/\d+$"))
