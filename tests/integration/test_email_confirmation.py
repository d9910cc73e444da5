"""A customer's address confirmed: the sign-up e-mails a signed link in the sign-up's language;
mails about the customer's purchases wait (held) until it is followed, then go out; a bad or
expired link says so and the signed-in customer can ask for another; buying is never blocked."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import Customer, MailStatus, OutboxMail, PartnerUser
from app.services import email_confirmation
from app.services.mail import messages, outbox
from app.tasks import celery
from tests.support.pages import another_client, page_sign_up, text
from tests.support.shop import CUSTOMER_PASSWORD, buy, sign_up

LINK = re.compile(r"https?://[^\s\"'<>]+/confirm-email/[A-Za-z0-9_.-]+")
HELD_KIND = "test_accounts_held_note"


@messages.renderer(HELD_KIND)
def _held_note(_session: Session, params: dict[str, Any]) -> messages.Message:
    """A mail of the test's own kind, standing in for any mail held for the address."""
    return messages.Message(subject="Held note", text=f"Note {params['n']}.", html="<p>Note</p>")


@pytest.fixture
def mail(mailbox: Any) -> Iterator[Any]:
    """Tasks run in the request that sends them: the mail is in the box when it answers."""
    saved = celery.conf.task_always_eager
    celery.conf.task_always_eager = True
    yield mailbox
    celery.conf.task_always_eager = saved


def wait(box: Any, to: str, pattern: re.Pattern[str] | str, count: int = 1) -> list[EmailMessage]:
    deadline = time.monotonic() + 10
    while True:
        found = [m for m in box.to(to) if re.search(pattern, str(m["Subject"]) + plain(m))]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) >= count, f"{len(found)} mails to {to} match, {count} awaited"
            return found
        time.sleep(0.05)


def plain(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return str(part.get_content()) if part is not None else ""


def link_path(message: EmailMessage) -> str:
    found = LINK.search(plain(message))
    assert found, plain(message)
    return urlsplit(found.group(0)).path


def customer_row(email: str = "ana@example.com") -> Customer:
    db.session.expire_all()
    row = db.session.scalar(select(Customer).where(Customer.email == email))
    assert row is not None
    return row


def held_mail(email: str = "ana@example.com") -> int:
    mail_id = outbox.queue(
        db.session, HELD_KIND, email, key=f"held:{email}", locale="en", params={"n": 1}, held=True
    )
    db.session.commit()
    assert mail_id is not None
    return mail_id


def status_of(mail_id: int) -> str:
    db.session.expire_all()
    return db.session.get(OutboxMail, mail_id).status


def test_the_sign_up_mails_a_link_in_its_language_that_releases_the_held_mails(
    client: FlaskClient, mail: Any
) -> None:
    browser = another_client(client)
    signed_up = browser.post(
        "/signup",
        data={"name": "Ana Souza", "email": "ana@example.com", "password": CUSTOMER_PASSWORD},
        headers={"Accept-Language": "pt-BR"},
    )
    assert signed_up.status_code == 302
    [message] = wait(mail, "ana@example.com", "confirm-email")
    assert message["Subject"] == "Confirme seu endereço de e-mail"
    user = db.session.scalar(select(PartnerUser).where(PartnerUser.email == "ana@example.com"))
    assert user.locale == "pt_BR"  # the sign-up's language, for every later mail
    assert customer_row().email_confirmed_at is None
    orders = text(browser.get("/orders"))
    assert 'id="confirm-email-notice"' in orders

    note = held_mail()
    time.sleep(0.2)
    assert status_of(note) == MailStatus.HELD
    assert len(mail.to("ana@example.com")) == 1  # the held mail waits

    followed = another_client(client).get(link_path(message))  # from the mail reader
    assert followed.status_code == 302 and urlsplit(followed.headers["Location"]).path == "/orders"
    assert customer_row().email_confirmed_at is not None
    wait(mail, "ana@example.com", "Held note")
    assert status_of(note) == MailStatus.SENT
    assert 'id="confirm-email-notice"' not in text(browser.get("/orders"))
    # Following it again changes nothing and is no error.
    assert another_client(client).get(link_path(message)).status_code == 302


def test_an_unconfirmed_customer_buys_and_the_order_mail_waits_for_the_link(
    client: FlaskClient, on_sale: Any, mail: Any
) -> None:
    headers = sign_up(client, confirmed=False)
    [link_mail] = wait(mail, "ana@example.com", "confirm-email")
    order = buy(client, on_sale, buyer=headers)
    assert order["status"] == "paid"  # buying is not blocked
    assert customer_row().email_confirmed_at is None
    order_mail = db.session.scalar(
        select(OutboxMail).where(
            OutboxMail.to_address == "ana@example.com", OutboxMail.kind == "order_paid"
        )
    )
    assert order_mail is not None and order_mail.status == MailStatus.HELD
    assert len(mail.to("ana@example.com")) == 1  # the link only

    assert client.get(link_path(link_mail)).status_code == 302
    [confirmation] = wait(mail, "ana@example.com", f"order #{order['id']}")
    assert status_of(order_mail.id) == MailStatus.SENT
    assert confirmation["To"] == "ana@example.com"


def test_a_bad_or_tampered_link_confirms_nothing(client: FlaskClient, mail: Any) -> None:
    page_sign_up(client, confirmed=False)
    [message] = wait(mail, "ana@example.com", "confirm-email")
    path = link_path(message)
    for bad in ("/confirm-email/nonsense", path[:-3] + "abc", path + "x"):
        response = client.get(bad)
        assert response.status_code == 404, bad
        assert "not valid" in text(response)
    assert customer_row().email_confirmed_at is None


def test_a_link_for_an_address_since_changed_confirms_nothing(
    app: Flask, client: FlaskClient
) -> None:
    page_sign_up(client, confirmed=False)
    row = customer_row()
    with app.test_request_context():
        token = email_confirmation.link_token(row)
    row.email = "other@example.com"
    db.session.commit()
    assert client.get(f"/confirm-email/{token}").status_code == 404
    assert customer_row("other@example.com").email_confirmed_at is None


def test_an_expired_link_says_so_and_the_customer_asks_for_another(
    app: Flask, client: FlaskClient, mail: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    page_sign_up(client, confirmed=False)
    wait(mail, "ana@example.com", "confirm-email")
    long_ago = time.time() - email_confirmation.CONFIRM_DAYS * 86400 - 60
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: long_ago)
    with app.test_request_context():
        token = email_confirmation.link_token(customer_row())  # signed 7 days and a minute ago
    monkeypatch.undo()
    expired = client.get(f"/confirm-email/{token}")
    assert expired.status_code == 410
    page = text(expired)
    assert "expired" in page and 'action="/confirm-email/resend"' in page
    assert customer_row().email_confirmed_at is None

    again = client.post("/confirm-email/resend")
    assert again.status_code == 302
    assert "A new confirmation link is on its way" in text(client.get("/orders"))
    second = wait(mail, "ana@example.com", "confirm-email", 2)[-1]
    assert client.get(link_path(second)).status_code == 302
    assert customer_row().email_confirmed_at is not None
    client.post("/confirm-email/resend")
    assert "already confirmed" in text(client.get("/orders"))


def test_asking_for_another_link_needs_a_signed_in_customer(client: FlaskClient) -> None:
    response = client.post("/confirm-email/resend")
    assert response.status_code == 302 and "/login/" in response.headers["Location"]
    assert db.session.scalar(select(OutboxMail.id)) is None


def test_the_demos_customers_are_confirmed(app: Flask) -> None:
    """Their order mails are not held (the demo's catch-all shows them at once)."""
    result = app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    confirmed = db.session.scalars(select(Customer.email_confirmed_at)).all()
    assert len(confirmed) > 2  # the two who log in and the past buyers
    assert all(moment is not None for moment in confirmed)
