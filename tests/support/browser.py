"""Debian's Chromium as the browser tests drive it through Playwright (never a downloaded
browser), and the steps several of them take."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
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


def pay_by_card_in_browser(page: Page, number: str = "4242 4242 4242 4242") -> None:
    """On a hold's page: Ana Souza's card (any future expiry, CVC 123) typed in the card form
    and sent (the page tokenizes it with the acquirer, then pays with the token)."""
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry month").fill("12")
    page.get_by_label("Expiry year").fill(str(utcnow().year + 2))
    page.get_by_label("CVC").fill("123")
    page.get_by_label("Name on card").fill("Ana Souza")
    page.get_by_role("button", name="Continue").click()


def open_navbar_menu(page: Page, menu: str, item: str) -> None:
    """``menu`` > ``item`` in the dashboard's navigation bar, as a user would. The dropdown
    opens by Bootstrap's script, so this waits for the page's scripts to have run (``load``),
    and a click that still landed before them is repeated until the item shows."""
    page.wait_for_load_state("load")
    navbar = page.locator(".navbar")
    # Not exact: the menu links' names start with an icon and a no-break space.
    link = navbar.locator(".dropdown-menu").get_by_role("link", name=item)
    for _ in range(BROWSER_TIMEOUT_MS // 1_000):
        if not link.is_visible():
            navbar.get_by_role("link", name=menu).click()
        try:
            link.wait_for(state="visible", timeout=1_000)
            break
        except PlaywrightTimeoutError:
            continue
    link.click()
