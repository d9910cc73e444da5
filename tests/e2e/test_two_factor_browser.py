"""A partner user turns on two-factor sign-in from the dashboard with a real browser (CSRF on):
the QR code and key, a code from the "app" (pyotp), then a sign-in that asks for the code."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from playwright.sync_api import Page, expect

from app.extensions import db
from tests.support.browser import open_navbar_menu
from tests.support.builders import PASSWORD, make_partner, make_user

SCREENSHOT = "/tmp/e2e_two_factor.png"  # noqa: S108 - a fixed place to look at the page


def sign_in_with_password(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/login/")
    page.locator("#username").fill("alice")
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()


@pytest.mark.browser
def test_partner_turns_on_two_factor_and_signs_in_with_a_code(
    live_server: str, browser_page: Page
) -> None:
    make_user("alice", "Partner", make_partner("Acme Shows"))
    db.session.commit()
    page = browser_page

    sign_in_with_password(page, live_server)
    expect(page.locator(".navbar")).to_contain_text("Alice Test")
    open_navbar_menu(page, "Security", "Two-factor sign-in")
    expect(page).to_have_url(re.compile(r"/two-factor/$"))
    expect(page.locator("#totp-qr svg")).to_be_visible()
    page.screenshot(path=SCREENSHOT, full_page=True)
    secret = page.locator("#totp-secret").inner_text()
    app = pyotp.TOTP(secret)

    page.locator("#totp").fill("000000")
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator(".alert")).to_contain_text("Wrong code")
    page.locator("#totp").fill(app.now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("#two-factor-status")).to_contain_text("On")

    page.goto(f"{live_server}/logout/")
    sign_in_with_password(page, live_server)
    expect(page).to_have_url(re.compile(r"/login/code$"))
    page.get_by_label("Code from your authenticator app").fill(app.at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    expect(page).not_to_have_url(re.compile(r"/login/"))
    expect(page.locator(".navbar")).to_contain_text("Alice Test")
