"""Two-factor sign-in (TOTP) for staff: enrolling from the dashboard, the code asked after the
password on the form and the API login, a code good once, and roles that must enrol before
doing anything else."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import PartnerUser
from app.services import two_factor
from tests.support.apps import another_app
from tests.support.builders import PASSWORD, login, make_user
from tests.support.clock import Clock
from tests.support.pages import another_client, page_sign_up, path_of

STEP = two_factor.STEP_SECONDS


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """The time codes are checked at, moved by hand (in the middle of a 30-second step)."""
    clock = Clock()
    clock.now = 1_800_000_015.0
    monkeypatch.setattr(two_factor, "clock", clock)
    return clock


def code(secret: str, clock: Clock, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now + steps_ahead * STEP)


def signed_in(client: FlaskClient) -> bool:
    return client.get("/users/userinfo/").status_code == 200


def enrol(client: FlaskClient, clock: Clock) -> str:
    """Turn two-factor sign-in on for the signed-in user; returns the secret shown."""
    page = client.get("/two-factor/")
    assert page.status_code == 200
    secret = shown_secret(page.get_data(as_text=True))
    done = client.post("/two-factor/enrol", data={"totp": code(secret, clock)})
    assert done.status_code == 302
    assert user("alice").has_two_factor
    return secret


def shown_secret(page: str) -> str:
    match = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page)
    assert match, page[:2000]
    return html.unescape(match.group(1))


def user(username: str) -> PartnerUser:
    db.session.rollback()
    return db.session.scalars(select(PartnerUser).where(PartnerUser.username == username)).one()


def password_step(client: FlaskClient, username: str = "alice") -> None:
    response = client.post("/login/", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302 and path_of(response) == "/login/code", response.headers


def api_login(client: FlaskClient, **extra: str):
    body = {"username": "alice", "password": PASSWORD, "provider": "db", **extra}
    return client.post("/api/v1/security/login", json=body)


@pytest.fixture
def alice(client: FlaskClient) -> FlaskClient:
    """Partner staff alice, signed in with her password."""
    make_user("alice", "Partner")
    return login(client, "alice")


def test_staff_enrol_with_the_qr_code_and_a_code_from_their_app(alice, clock):
    page = alice.get("/two-factor/").get_data(as_text=True)
    assert "<svg" in page  # the QR code, inline
    secret = shown_secret(page)
    assert alice.get("/two-factor/").get_data(as_text=True).count(secret) == 1  # same secret
    wrong = alice.post("/two-factor/enrol", data={"totp": "000000"})
    assert wrong.status_code == 302 and not user("alice").has_two_factor
    assert alice.post("/two-factor/enrol", data={"totp": code(secret, clock)}).status_code == 302
    stored = user("alice").totp_secret
    assert stored and secret not in stored  # kept encrypted
    assert signed_in(alice)  # the browser that enrolled goes on
    assert "On:" in alice.get("/two-factor/").get_data(as_text=True)


def test_after_enrolment_the_form_login_asks_for_the_code(alice, clock):
    secret = enrol(alice, clock)
    browser = another_client(alice)
    password_step(browser)
    assert not signed_in(browser)  # the password alone signs nobody in
    wrong = browser.post("/login/code", data={"totp": "123456"})
    assert wrong.status_code == 401 and "Wrong or already used code" in wrong.get_data(True)
    assert not signed_in(browser)
    right = browser.post("/login/code", data={"totp": code(secret, clock, steps_ahead=1)})
    assert right.status_code == 302
    assert signed_in(browser)


def test_a_code_signs_in_once(alice, clock):
    secret = enrol(alice, clock)
    clock.now += STEP
    first, second = another_client(alice), another_client(alice)
    password_step(first)
    password_step(second)
    used = code(secret, clock)
    assert first.post("/login/code", data={"totp": used}).status_code == 302
    replayed = second.post("/login/code", data={"totp": used})
    assert replayed.status_code == 401 and not signed_in(second)
    # Nor an older one still inside the window.
    older = second.post("/login/code", data={"totp": code(secret, clock, steps_ahead=-1)})
    assert older.status_code == 401
    clock.now += STEP
    assert second.post("/login/code", data={"totp": code(secret, clock)}).status_code == 302


def test_the_code_step_needs_the_password_step_first(client):
    response = client.post("/login/code", data={"totp": "123456"})
    assert response.status_code == 302 and path_of(response).startswith("/login/")


def test_the_api_login_asks_for_the_code(alice, clock):
    secret = enrol(alice, clock)
    api = another_client(alice)
    missing = api_login(api)
    assert missing.status_code == 401 and missing.get_json()["error"] == "totp_required"
    wrong = api_login(api, totp="999999")
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "totp_invalid"
    assert api_login(api, totp=123456).status_code == 400  # a string, not a number
    right = api_login(api, totp=code(secret, clock, steps_ahead=1))
    assert right.status_code == 200 and "access_token" in right.get_json()
    replayed = api_login(api, totp=code(secret, clock, steps_ahead=1))
    assert replayed.status_code == 401


def test_turning_it_on_ends_the_other_sessions(alice, clock):
    elsewhere = login(another_client(alice), "alice")
    enrol(alice, clock)
    assert not signed_in(elsewhere)


def test_staff_turn_it_off_with_a_code(alice, clock):
    secret = enrol(alice, clock)
    wrong = alice.post("/two-factor/disable", data={"totp": "000000"})
    assert wrong.status_code == 302 and user("alice").has_two_factor
    alice.post("/two-factor/disable", data={"totp": code(secret, clock, steps_ahead=1)})
    assert not user("alice").has_two_factor
    assert api_login(another_client(alice)).status_code == 200  # the password is enough again


def test_an_admin_resets_a_lost_two_factor(alice, clock):
    enrol(alice, clock)
    make_user("root", "Admin")
    admin = login(another_client(alice), "root")
    alice_id = user("alice").id
    assert admin.post(f"/users/action/reset_two_factor/{alice_id}").status_code == 302
    assert not user("alice").has_two_factor
    assert not signed_in(alice)  # her sessions ended with it


def test_customers_do_not_enrol(client):
    page_sign_up(client)
    assert client.get("/two-factor/").status_code in (302, 403)


@pytest.fixture
def required_app(app: Flask) -> Iterator[Flask]:
    """An app as production has it: admins (here) must sign in with a code."""
    with another_app(app, TOTP_REQUIRED_ROLES=["Admin"]) as required:
        yield required


def test_a_role_that_requires_it_enrols_before_anything_else(required_app, clock):
    make_user("alice", "Admin")
    make_user("bob", "Partner")
    browser = required_app.test_client()
    login(browser, "alice")
    page = browser.get("/users/list/")
    assert page.status_code == 302 and path_of(page) == "/two-factor/"
    assert browser.get("/api/v1/events/").status_code == 403
    refused = api_login(required_app.test_client())
    assert refused.status_code == 403 and refused.get_json()["error"] == "two_factor_required"

    secret = enrol(browser, clock)
    assert browser.get("/users/list/").status_code == 200
    browser.post("/two-factor/disable", data={"totp": code(secret, clock, steps_ahead=1)})
    assert user("alice").has_two_factor  # required: it stays on
    # Other roles are not asked.
    assert signed_in(login(required_app.test_client(), "bob"))


def test_the_pending_sign_in_expires(alice, clock, monkeypatch):
    from app.views import two_factor as views

    secret = enrol(alice, clock)
    browser = another_client(alice)
    password_step(browser)
    later = views.time.time() + views.PENDING_SECONDS + 1
    monkeypatch.setattr(views.time, "time", lambda: later)
    late = browser.post("/login/code", data={"totp": code(secret, clock, steps_ahead=1)})
    assert late.status_code == 302 and path_of(late).startswith("/login/")
    assert not signed_in(browser)
