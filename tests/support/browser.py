"""Debian's Chromium as the browser tests drive it through Playwright (never a downloaded
browser), and the steps several of them take."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import update

from app.extensions import db
from app.models import Customer
from app.models.base import utcnow
from tests.support.shop import CUSTOMER_PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Playwright's timeout for each action and each expect(), in milliseconds.
BROWSER_TIMEOUT_MS = 15_000


def sign_up_in_browser(page: Page, base: str, email: str, *, confirmed: bool = True) -> None:
    """Ana Souza signs up on the shop's sign-up page; the page is then logged in.
    ``confirmed``: her address counts as confirmed (``shop.sign_up``)."""
    page.goto(base + "/signup")
    page.get_by_label("Name").fill("Ana Souza")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password (8+ characters)").fill(CUSTOMER_PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator(".flash-success")).to_contain_text("Welcome, Ana Souza!")
    if confirmed:
        db.session.execute(
            update(Customer)
            .where(Customer.email == email.strip().lower())
            .values(email_confirmed_at=utcnow())
        )
        db.session.commit()
