"""A customer who forgot the password, in a real browser (CSRF on): "Forgot your password?" on
the login page, the link taken from the mail the SMTP server received, a new password set on
the link's page, and a sign-in with it (the old one refused)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from app.extensions import db
from app.models import OutboxMail
from app.tasks import celery
from tests.support.browser import sign_up_in_browser
from tests.support.shop import CUSTOMER_PASSWORD

NEW_PASSWORD = "Girafa-Azul-Dança-48"  # noqa: S105 - a test password
LINK = re.compile(r"https?://[^\s\"'<>]+/password-reset/[A-Za-z0-9_.-]+")


@pytest.fixture
def mail_to_live_server(app: Flask, mailbox: Any, live_server: str) -> Iterator[Any]:
    """Mails written by the live server are sent from here (its app names no mail server, so
    they wait in the outbox), with links to the live server."""
    saved = app.config["PUBLIC_URL"], celery.conf.task_always_eager
    app.config["PUBLIC_URL"] = live_server
    # The live server's tasks (asking for a link is one) run in the request: no worker here.
    celery.conf.task_always_eager = True
    yield mailbox
    app.config["PUBLIC_URL"], celery.conf.task_always_eager = saved


def send_waiting_mails() -> None:
    db.session.expire_all()
    celery.tasks["mail.send_due"].apply()


def sign_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign In").click()


@pytest.mark.browser
def test_a_customer_resets_a_forgotten_password_with_the_mailed_link(
    live_server: str, browser_page: Page, mail_to_live_server: Any
) -> None:
    page = browser_page
    sign_up_in_browser(page, live_server, "ana@example.com")
    page.context.clear_cookies()  # another day, signed out
    mailbox = mail_to_live_server

    page.goto(f"{live_server}/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page).to_have_url(re.compile(r"/password-reset$"))
    page.get_by_label("E-mail").fill("ana@example.com")
    page.get_by_role("button", name="Send me a link").click()
    expect(page.locator("#reset-asked")).to_contain_text("a link to choose a new password")

    assert db.session.query(OutboxMail).filter_by(kind="password_reset").count() == 1
    send_waiting_mails()
    [message] = [
        m for m in mailbox.wait_for(1, to="ana@example.com") if "password" in str(m["Subject"])
    ]
    text = message.get_body(preferencelist=("plain",)).get_content()
    link = LINK.search(text)
    assert link, text
    assert urlsplit(link.group(0)).netloc == urlsplit(live_server).netloc

    page.goto(link.group(0))
    page.get_by_label("New password (8+ characters)").fill(NEW_PASSWORD)
    page.get_by_label("The new password again").fill("not the same")
    page.get_by_role("button", name="Save the new password").click()
    expect(page.locator("#password_again-error")).to_contain_text("differ")
    page.get_by_label("New password (8+ characters)").fill(NEW_PASSWORD)
    page.get_by_label("The new password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save the new password").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.locator(".flash-success")).to_contain_text("Your password is changed")

    sign_in(page, live_server, "ana@example.com", CUSTOMER_PASSWORD)
    expect(page).to_have_url(re.compile(r"/login/"))  # the old password no longer works
    sign_in(page, live_server, "ana@example.com", NEW_PASSWORD)
    expect(page).not_to_have_url(re.compile(r"/login/"))
    page.goto(f"{live_server}/orders")
    expect(page.get_by_role("heading", name="My orders")).to_be_visible()

    page.goto(link.group(0))  # once only
    expect(page.locator("#link-invalid")).to_contain_text("not valid any more")
