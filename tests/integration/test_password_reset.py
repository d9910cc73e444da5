"""Password reset through the real mail path (outbox, sender task, a real SMTP server): the
link arrives in the account's language, works once, expires, is voided by a newer one, ends
every session and token; asking never tells whether an address has an account; the API's
answers; the limits per client address (429) and per account (silent); no row and no page of
the dashboard holds a working link; asking costs the request the same for every address."""

from __future__ import annotations

import datetime as dt
import re
import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select, update
from sqlalchemy import text as sql

from app.extensions import db
from app.models import (
    Customer,
    MailStatus,
    OutboxMail,
    PartnerUser,
    PasswordReset,
)
from app.models.audit import AuditEntry
from app.models.base import utcnow
from app.services import password_reset
from app.services.mail import outbox
from app.tasks import celery
from tests.support.apps import another_app
from tests.support.builders import PASSWORD, api_token, login, make_user
from tests.support.database import count
from tests.support.pages import another_client, field_error, text
from tests.support.shop import CUSTOMER_PASSWORD

NEW_PASSWORD = "Trem-Lilas-Voa-93"  # noqa: S105 - a test password
ASKED = "If the address has an account, a link to choose a new password is on its way to it."
LINK = re.compile(r"https?://[^\s\"'<>]+/password-reset/[A-Za-z0-9_.-]+")


@pytest.fixture
def mail(mailbox: Any, tasks_in_process: None) -> Any:
    return mailbox


def ask(client: FlaskClient, email: str):
    return client.post("/api/v1/security/password-reset", json={"email": email})


def confirm(client: FlaskClient, token: str, password: str = NEW_PASSWORD):
    return client.post(
        "/api/v1/security/password-reset/confirm", json={"token": token, "password": password}
    )


def reset_mails(box: Any, to: str, count: int = 1) -> list[EmailMessage]:
    """The reset mails to ``to`` (the sign-up's confirmation aside), waiting for ``count``."""
    deadline = time.monotonic() + 10
    while True:
        found = [m for m in box.to(to) if LINK.search(body(m))]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) >= count, f"{len(found)} reset mails to {to}, {count} awaited"
            return found
        time.sleep(0.05)


def body(message: EmailMessage, subtype: str = "plain") -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


def link_path(message: EmailMessage) -> str:
    found = LINK.search(body(message))
    assert found, body(message)
    return urlsplit(found.group(0)).path


def token_of(message: EmailMessage) -> str:
    return link_path(message).rsplit("/", 1)[1]


def customer(client: FlaskClient, email: str = "ana@example.com", language: str = "en") -> int:
    """A customer signed up in ``language``; their user id."""
    response = client.post(
        "/api/v1/customers/",
        json={"name": "Ana Souza", "email": email, "password": CUSTOMER_PASSWORD},
        headers={"Accept-Language": language},
    )
    assert response.status_code == 201, response.get_json()
    return db.session.scalar(select(Customer.user_id).where(Customer.email == email))


def tokens(client: FlaskClient, username: str, password: str) -> tuple[str, str]:
    response = client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db", "refresh": True},
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"], response.get_json()["refresh_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def form_login(client: FlaskClient, username: str, password: str) -> bool:
    """Whether the form signs in (a failed sign-in goes back to /login/)."""
    response = client.post("/login/", data={"username": username, "password": password})
    return response.status_code == 302 and not urlsplit(
        response.headers["Location"]
    ).path.startswith("/login")


def test_a_customer_resets_the_password_from_a_mail_in_their_language(
    client: FlaskClient, mail: Any
) -> None:
    customer(client, language="pt-BR")
    browser = another_client(client)
    assert form_login(browser, "ana@example.com", CUSTOMER_PASSWORD)
    assert browser.get("/orders").status_code == 200
    api = another_client(client)
    access, refresh = tokens(api, "ana@example.com", CUSTOMER_PASSWORD)
    mail.clear()  # the sign-up's confirmation

    asker = another_client(client)
    page = asker.get("/login/")
    assert 'href="/password-reset"' in text(page)
    answer = asker.post("/password-reset", data={"email": "Ana@Example.com "})
    assert answer.status_code == 200 and ASKED in text(answer)

    [message] = reset_mails(mail, "ana@example.com")
    assert message["Subject"] == "Redefina sua senha da Bilheteria"  # signed up in Portuguese
    assert "Olá, Ana" in body(message)
    assert LINK.search(body(message, "html"))
    form = asker.get(link_path(message))
    assert form.status_code == 200 and 'name="password"' in text(form)
    assert form.headers["Cache-Control"] == "no-store"
    done = asker.post(
        link_path(message), data={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    )
    assert done.status_code == 302 and urlsplit(done.headers["Location"]).path == "/login/"
    assert "Your password is changed" in text(asker.get("/login/"))

    assert not form_login(another_client(client), "ana@example.com", CUSTOMER_PASSWORD)
    assert form_login(another_client(client), "ana@example.com", NEW_PASSWORD)
    # Every session and token from before ended: the browser's cookie, the access and refresh
    # tokens.
    assert browser.get("/api/v1/orders/").status_code == 401
    assert browser.get("/orders").status_code == 302
    assert api.get("/api/v1/orders/", headers=bearer(access)).status_code == 401
    assert api.post("/api/v1/security/refresh", headers=bearer(refresh)).status_code == 401


def test_the_link_works_once(client: FlaskClient, mail: Any) -> None:
    customer(client)
    assert ask(client, "ana@example.com").status_code == 202
    [message] = reset_mails(mail, "ana@example.com")
    token = token_of(message)
    assert confirm(client, token).status_code == 204
    again = confirm(client, token, "Outra-Coisa-Bem-Longa-71")
    assert again.status_code == 422 and again.get_json()["error"] == "invalid_link"
    page = client.get(link_path(message))
    assert page.status_code == 410
    assert "not valid any more" in text(page) and 'href="/password-reset"' in text(page)
    # Used: its token no longer sits in the outbox; only its hash was ever stored.
    [row] = db.session.scalars(select(OutboxMail).where(OutboxMail.kind == "password_reset"))
    assert "token" not in row.params and token not in str(row.params)
    reset = db.session.scalar(select(PasswordReset))
    assert reset.token_hash == password_reset.token_hash(token) != token
    assert reset.used_at is not None


def test_an_expired_link_says_so_and_changes_nothing(client: FlaskClient, mail: Any) -> None:
    user_id = customer(client)
    ask(client, "ana@example.com")
    [message] = reset_mails(mail, "ana@example.com")
    db.session.execute(
        update(PasswordReset).values(
            created_at=utcnow() - dt.timedelta(minutes=61),
            expires_at=utcnow() - dt.timedelta(minutes=1),
        )
    )
    db.session.commit()
    assert client.get(link_path(message)).status_code == 410
    posted = client.post(
        link_path(message), data={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    )
    assert posted.status_code == 410 and "Ask for a new one" in text(posted)
    refused = confirm(client, token_of(message))
    assert refused.status_code == 422 and refused.get_json()["error"] == "invalid_link"
    db.session.expire_all()
    assert db.session.get(PartnerUser, user_id).session_epoch == 0  # nothing ended
    assert form_login(another_client(client), "ana@example.com", CUSTOMER_PASSWORD)


def test_a_new_link_voids_the_older_one(client: FlaskClient, mail: Any) -> None:
    customer(client)
    ask(client, "ana@example.com")
    ask(client, "ana@example.com")
    first, second = reset_mails(mail, "ana@example.com", 2)
    assert token_of(first) != token_of(second)
    assert client.get(link_path(first)).status_code == 410
    assert confirm(client, token_of(first)).status_code == 422
    assert confirm(client, token_of(second)).status_code == 204
    rows = db.session.scalars(select(PasswordReset).order_by(PasswordReset.id)).all()
    assert rows[0].voided_at is not None and rows[0].used_at is None
    assert rows[1].used_at is not None
    assert all(
        "token" not in row.params
        for row in db.session.scalars(select(OutboxMail).where(OutboxMail.kind == "password_reset"))
    )


def test_a_link_voided_before_its_mail_went_out_is_not_sent(
    app: Flask, client: FlaskClient, mailbox: Any, tasks_in_process: None
) -> None:
    """Mails written while the server is away: the first link is voided by the second before
    either is sent, so only the second goes."""
    customer(client)
    saved = app.config["MAIL_SERVER"]
    app.config["MAIL_SERVER"] = None
    try:
        ask(client, "ana@example.com")
        ask(client, "ana@example.com")
    finally:
        app.config["MAIL_SERVER"] = saved
    mailbox.clear()
    celery.tasks["mail.send_due"].apply()
    [sent] = reset_mails(mailbox, "ana@example.com")
    time.sleep(0.2)
    assert len(reset_mails(mailbox, "ana@example.com")) == 1
    second = db.session.scalars(select(PasswordReset).order_by(PasswordReset.id.desc())).first()
    assert password_reset.token_hash(token_of(sent)) == second.token_hash


def _without_csrf(page: str) -> str:
    return re.sub(r'(name="csrf_token"[^>]*value=")[^"]*', r"\1", page)


def test_an_unknown_address_gets_the_same_answer_and_nothing_is_written_or_sent(
    client: FlaskClient, mail: Any
) -> None:
    customer(client)
    mail.clear()
    known = ask(client, "ana@example.com")
    unknown = ask(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 202
    assert known.get_json() == unknown.get_json() == {"message": ASKED}
    page_known = client.post("/password-reset", data={"email": "ana@example.com"})
    page_unknown = client.post("/password-reset", data={"email": "nobody@example.com"})
    assert page_known.status_code == page_unknown.status_code == 200
    # The same page but for the address typed and the form's CSRF token (signed with the
    # second it was made in: two requests may straddle one).
    assert _without_csrf(text(page_known)).replace("ana@example.com", "X") == _without_csrf(
        text(page_unknown)
    ).replace("nobody@example.com", "X")
    reset_mails(mail, "ana@example.com", 2)
    assert mail.to("nobody@example.com") == []
    assert count(PasswordReset) == 2  # Ana's two, none for the unknown address
    assert count(OutboxMail, OutboxMail.to_address == "nobody@example.com") == 0


def test_an_inactive_account_gets_no_link(client: FlaskClient, mail: Any) -> None:
    user_id = customer(client)
    db.session.execute(update(PartnerUser).where(PartnerUser.id == user_id).values(active=False))
    db.session.commit()
    mail.clear()
    assert ask(client, "ana@example.com").status_code == 202
    assert count(PasswordReset) == 0 and mail.messages == []


def test_a_staff_user_resets_by_the_address_of_their_account_and_the_audit_log_says_so(
    client: FlaskClient, mail: Any
) -> None:
    make_user("alice", "Partner")  # username alice, address alice@example.com
    assert ask(client, "ALICE@example.com").status_code == 202
    [message] = reset_mails(mail, "alice@example.com")
    assert message["Subject"] == "Redefina sua senha da Bilheteria"  # no language saved: pt-BR
    assert confirm(client, token_of(message)).status_code == 204
    assert form_login(another_client(client), "alice", NEW_PASSWORD)
    assert not form_login(another_client(client), "alice", PASSWORD)
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.object_type == "user", AuditEntry.action == "update")
    )
    assert entry is not None and entry.object_label == "alice"
    assert entry.changes["password"] == ["[redacted]", "[redacted]"]


def test_a_weak_or_mistyped_new_password_is_refused_next_to_its_field_and_the_link_stays(
    client: FlaskClient, mail: Any
) -> None:
    customer(client)
    ask(client, "ana@example.com")
    [message] = reset_mails(mail, "ana@example.com")
    path = link_path(message)
    weak = client.post(path, data={"password": "password", "password_again": "password"})
    assert weak.status_code == 422
    assert "easy to guess" in (field_error(text(weak), "password") or "")
    differ = client.post(path, data={"password": NEW_PASSWORD, "password_again": "other"})
    assert differ.status_code == 422
    assert "differ" in (field_error(text(differ), "password_again") or "")
    api_weak = confirm(client, token_of(message), "12345678")
    assert api_weak.status_code == 422
    assert api_weak.get_json()["error"] == "weak_password"
    assert api_weak.get_json()["field"] == "password"
    assert confirm(client, token_of(message)).status_code == 204  # still usable


def test_the_api_refuses_bodies_it_cannot_read_with_400(client: FlaskClient) -> None:
    for body in ([], "x", 5, {}, {"email": 5}, {"email": None}, {"mail": "a@b.c"}):
        assert client.post("/api/v1/security/password-reset", json=body).status_code == 400
    assert (
        client.post(
            "/api/v1/security/password-reset", data="{", content_type="application/json"
        ).status_code
        == 400
    )
    for body in ([], {}, {"token": "x"}, {"password": NEW_PASSWORD}, {"token": 1, "password": "x"}):
        response = client.post("/api/v1/security/password-reset/confirm", json=body)
        assert response.status_code == 400, body
    unknown = confirm(client, "no-such-token")
    assert unknown.status_code == 422 and unknown.get_json()["error"] == "invalid_link"
    assert client.get("/password-reset/no-such-token").status_code == 410
    empty = client.post("/password-reset", data={"email": "  "})
    assert empty.status_code == 422 and field_error(text(empty), "email")


def test_the_api_operations_are_in_the_openapi_spec(client: FlaskClient) -> None:
    make_user("root", "Admin")
    spec = client.get("/api/v1/_openapi", headers=api_token(client, "root"))
    paths = spec.get_json()["paths"]
    assert "post" in paths["/api/v1/security/password-reset"]
    assert set(paths["/api/v1/security/password-reset/confirm"]["post"]["responses"]) >= {
        "204",
        "400",
        "422",
    }


def test_an_account_gets_a_few_links_an_hour_then_asking_silently_sends_nothing(
    app: Flask, client: FlaskClient, mail: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "RATELIMIT_PASSWORD_RESET", "2 per hour")
    customer(client)
    mail.clear()
    answers = [ask(client, "ana@example.com") for _ in range(4)]
    assert {a.status_code for a in answers} == {202}
    assert len({str(a.get_json()) for a in answers}) == 1
    reset_mails(mail, "ana@example.com", 2)
    assert count(PasswordReset) == 2
    assert len(mail.to("ana@example.com")) == 2
    # An hour later, one more.
    db.session.execute(
        update(PasswordReset).values(created_at=PasswordReset.created_at - dt.timedelta(hours=1))
    )
    db.session.commit()
    ask(client, "ana@example.com")
    reset_mails(mail, "ana@example.com", 3)


def test_a_client_address_asking_too_often_gets_429(app: Flask) -> None:
    with another_app(app, RATELIMIT_ENABLED=True, RATELIMIT_PASSWORD_RESET="2 per minute") as other:
        celery.conf.task_always_eager = True  # nothing left in the broker (another_app puts back)
        other.appbuilder.sm.limiter.reset()
        web = other.test_client()
        assert ask(web, "a@example.com").status_code == 202
        assert web.post("/password-reset", data={"email": "b@example.com"}).status_code == 200
        refused = ask(web, "c@example.com")  # the page and the API share one budget
        assert refused.status_code == 429 and refused.headers["Retry-After"].isdigit()
        page = web.post("/password-reset", data={"email": "d@example.com"})
        assert page.status_code == 429 and "Too many requests" in text(page)
        assert web.get("/password-reset").status_code == 200  # only asking counts


def test_a_reset_confirms_a_customers_unconfirmed_address_and_releases_its_held_mails(
    client: FlaskClient, mail: Any
) -> None:
    """Reading the link proved the customer reads the address."""
    customer(client)
    held = outbox.queue(
        db.session, "email_confirm", "ana@example.com", key="held:test", locale="en", held=True
    )
    db.session.commit()
    ask(client, "ana@example.com")
    [message] = reset_mails(mail, "ana@example.com")
    assert confirm(client, token_of(message)).status_code == 204
    db.session.expire_all()
    row = db.session.scalar(select(Customer).where(Customer.email == "ana@example.com"))
    assert row.email_confirmed_at is not None
    assert db.session.get(OutboxMail, held).status != MailStatus.HELD


def rows_as_text(table: str) -> str:
    """Every row of ``table``, each column written out, as one text."""
    return "\n".join(db.session.scalars(sql(f"SELECT t::text FROM {table} AS t")))  # noqa: S608


def test_no_row_and_no_dashboard_page_holds_a_working_link(client: FlaskClient, mail: Any) -> None:
    """The token is derived with SECRET_KEY when the mail is written: the outbox and the
    reset's rows hold neither it nor its HMAC, nor does an admin's page of the mail."""
    customer(client)
    ask(client, "ana@example.com")
    [message] = reset_mails(mail, "ana@example.com")
    token = token_of(message)
    db.session.expire_all()
    stored = rows_as_text("mail_outbox") + rows_as_text("password_reset")
    assert "password_reset:" in stored  # the rows are there...
    assert token not in stored  # ...and no link in them
    reset_id, signature = token.split(".")
    assert len(signature) >= 40 and signature not in stored
    [row] = db.session.scalars(select(OutboxMail).where(OutboxMail.kind == "password_reset"))
    assert row.params == {"reset_id": int(reset_id)}

    make_user("root", "Admin")
    admin = login(another_client(client), "root")
    shown = admin.get(f"/outboxmailview/show/{row.id}")
    assert shown.status_code == 200 and f"password_reset:{reset_id}" in text(shown)
    assert signature not in shown.get_data(as_text=True)
    listed = admin.get("/outboxmailview/list/")
    assert listed.status_code == 200 and signature not in listed.get_data(as_text=True)

    # A link whose HMAC is altered opens nothing; the mailed one works.
    flipped = "A" if signature[0] != "A" else "B"
    forged = f"{reset_id}.{flipped}{signature[1:]}"
    assert client.get(f"/password-reset/{forged}").status_code == 410
    refused = confirm(client, forged)
    assert refused.status_code == 422 and refused.get_json()["error"] == "invalid_link"
    other_id = confirm(client, f"{int(reset_id) + 1}.{signature}")
    assert other_id.status_code == 422
    assert confirm(client, token).status_code == 204
    assert form_login(another_client(client), "ana@example.com", NEW_PASSWORD)


def test_asking_costs_the_request_the_same_for_a_known_and_an_unknown_address(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request only hands the typed address to the worker's task: the same statements, the
    same task, whether the address has an account or not (the lookup, the limits, the writes
    and the mail are the worker's)."""
    customer(client)
    sent: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(
        celery.tasks["accounts.request_reset"],
        "delay",
        lambda *args, **kwargs: sent.append((args, kwargs)),
    )
    statements: list[str] = []

    def counted(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    asker = another_client(client)

    def cost(send: Any) -> tuple[int, list[tuple[tuple[Any, ...], dict[str, Any]]]]:
        statements.clear()
        sent.clear()
        event.listen(db.engine, "before_cursor_execute", counted)
        try:
            response = send()
        finally:
            event.remove(db.engine, "before_cursor_execute", counted)
        assert response.status_code in (200, 202)
        return len(statements), list(sent)

    for send in (
        lambda email: ask(asker, email),
        lambda email: asker.post("/password-reset", data={"email": email}),
    ):
        known, known_task = cost(lambda send=send: send("ana@example.com"))
        unknown, unknown_task = cost(lambda send=send: send("nobody@example.com"))
        assert known == unknown
        assert known_task == [(("ana@example.com",), {})]
        assert unknown_task == [(("nobody@example.com",), {})]
    assert count(PasswordReset) == 0  # nothing was done in the request
