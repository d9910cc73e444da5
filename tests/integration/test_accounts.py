"""Accounts: a session ends on the server (a copied cookie or an old token is refused after
logout, a password change or reset, a deactivation), and one password rule refuses common and
trivial passwords wherever a password is set."""

from __future__ import annotations

import pytest
from flask import current_app
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import LoginSession, PartnerUser
from app.services import accounts, checkin
from tests.support.builders import (
    PASSWORD,
    PartnerActor,
    api_token,
    login,
    make_partner,
    make_user,
)
from tests.support.gate import open_event
from tests.support.pages import another_client, page_sign_up
from tests.support.shop import CUSTOMER_PASSWORD

NEW_PASSWORD = "Outra-Senha-Forte-88"  # noqa: S105 - a test password
WEAK = ["password", "12345678", " " * 10, "aaaaaaaaaa", "qwertyuiop", "Password1", "abcd1234"]


def _signed_in(client: FlaskClient) -> bool:
    """Whether the dashboard sees a signed-in user (the profile page; else a redirect to
    /login/)."""
    response = client.get("/users/userinfo/")
    return response.status_code == 200


def _copy(client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of ``client``'s session cookie."""
    copy = another_client(client)
    cookie = client.get_cookie("session")
    assert cookie is not None
    copy.set_cookie("session", cookie.value)
    return copy


def _tokens(client: FlaskClient, username: str, password: str = PASSWORD) -> tuple[str, str]:
    response = client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db", "refresh": True},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    return body["access_token"], body["refresh_token"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _refresh(client: FlaskClient, refresh_token: str) -> int:
    return client.post("/api/v1/security/refresh", headers=_bearer(refresh_token)).status_code


def _user(username: str) -> PartnerUser:
    db.session.rollback()
    return db.session.scalars(select(PartnerUser).where(PartnerUser.username == username)).one()


# Sessions -------------------------------------------------------------------------------------


def test_a_copied_session_cookie_signs_nobody_in_after_logout(client):
    make_user("alice", "Admin")
    login(client, "alice")
    copy = _copy(client)
    assert _signed_in(copy)  # the copy works while the session lives
    client.get("/logout/")
    assert not _signed_in(client)
    assert not _signed_in(copy)


def test_a_customers_copied_cookie_no_longer_reaches_the_api_after_logout(client):
    page_sign_up(client)  # signed in by the sign-up
    copy = _copy(client)
    assert copy.get("/api/v1/orders/").status_code == 200
    client.get("/logout/")
    assert copy.get("/api/v1/orders/").status_code == 401


def test_logging_out_ends_only_that_browsers_session(client):
    make_user("alice", "Partner")
    laptop, phone = client, another_client(client)
    login(laptop, "alice")
    login(phone, "alice")
    laptop.get("/logout/")
    assert not _signed_in(laptop)
    assert _signed_in(phone)


def test_a_password_change_ends_every_other_session_and_every_token(client):
    make_user("alice", "Finance")
    login(client, "alice")
    copy = _copy(client)
    elsewhere = login(another_client(client), "alice")
    api = another_client(client)  # no cookie: only the tokens sign it in
    access, refresh = _tokens(api, "alice")
    assert api.get("/api/v1/events/", headers=_bearer(access)).status_code == 200
    assert _refresh(api, refresh) == 200

    changed = client.post(
        "/resetmypassword/form", data={"password": NEW_PASSWORD, "conf_password": NEW_PASSWORD}
    )
    assert changed.status_code == 302
    assert _signed_in(client)  # the browser that changed it goes on, in a new session
    assert not _signed_in(copy)  # a copy of its old cookie does not
    assert not _signed_in(elsewhere)
    assert api.get("/api/v1/events/", headers=_bearer(access)).status_code == 401
    assert _refresh(api, refresh) == 401
    new_access, _ = _tokens(api, "alice", NEW_PASSWORD)
    assert api.get("/api/v1/events/", headers=_bearer(new_access)).status_code == 200


def test_an_admin_resetting_a_password_ends_that_users_sessions(client):
    make_user("root", "Admin")
    gina = make_user("gina", "Partner")
    gina_id = gina.id
    gina_browser = login(another_client(client), "gina")
    api = another_client(client)
    _, refresh = _tokens(api, "gina")
    login(client, "root")
    reset = client.post(
        f"/resetpassword/form?pk={gina_id}",
        data={"password": NEW_PASSWORD, "conf_password": NEW_PASSWORD},
    )
    assert reset.status_code == 302
    assert not _signed_in(gina_browser)
    assert _refresh(api, refresh) == 401
    assert _signed_in(client)  # the admin's own session is untouched


def test_a_deactivated_user_stays_signed_out_when_reactivated(client):
    make_user("root", "Admin")
    gina = make_user("gina", "Partner")
    gina_id = gina.id
    gina_browser = login(another_client(client), "gina")
    api = another_client(client)
    access, refresh = _tokens(api, "gina")
    login(client, "root")

    def edit(active: bool) -> None:
        form = {
            "first_name": "Gina",
            "last_name": "Test",
            "username": "gina",
            "email": "gina@example.com",
            "roles": [str(r.id) for r in _user("gina").roles],
        }
        if active:
            form["active"] = "y"
        response = client.post(f"/users/edit/{gina_id}", data=form)
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        assert _user("gina").active is active

    edit(active=False)
    edit(active=True)
    assert not _signed_in(gina_browser)
    assert api.get("/api/v1/events/", headers=_bearer(access)).status_code == 401
    assert _refresh(api, refresh) == 401


def test_ending_sessions_is_a_service_a_password_reset_can_call(app, client):
    """Issue #17's reset link calls accounts.set_password (or end_sessions)."""
    make_user("gina", "Gate")
    browser = login(another_client(client), "gina")
    access, _ = _tokens(client, "gina")
    accounts.set_password(db.session, _user("gina"), NEW_PASSWORD)
    assert not _signed_in(browser)
    assert client.get("/api/v1/events/", headers=_bearer(access)).status_code == 401
    assert db.session.scalar(select(func.count()).select_from(LoginSession)) == 0


def test_a_gate_users_token_stops_scanning_when_the_password_changes(client, store):
    """The check-in API keeps a gate user's credentials (in Redis when configured): the token's
    epoch is checked against them, and they are dropped when the sessions end."""
    partner = make_partner("Aurora")
    event = open_event(partner)
    gina = make_user("gina", "Gate", partner)
    checkin.assign_gate_user(db.session, PartnerActor(partner), gina.id, event.id)
    headers = api_token(client, "gina")
    assert client.get("/api/v1/checkin/events", headers=headers).status_code == 200
    accounts.set_password(db.session, _user("gina"), NEW_PASSWORD)
    assert client.get("/api/v1/checkin/events", headers=headers).status_code == 401
    again = api_token(client, "gina", NEW_PASSWORD)
    assert client.get("/api/v1/checkin/events", headers=again).status_code == 200


def test_a_session_older_than_the_session_lifetime_is_over(app, client, monkeypatch):
    import datetime as dt

    make_user("alice", "Admin")
    login(client, "alice")
    assert _signed_in(client)
    monkeypatch.setattr(app, "permanent_session_lifetime", dt.timedelta(seconds=0))
    assert not _signed_in(client)


# Passwords -------------------------------------------------------------------------------------


@pytest.mark.parametrize("password", WEAK)
def test_sign_up_refuses_common_and_trivial_passwords(client, password):
    api = client.post(
        "/api/v1/customers/", json={"name": "Ana", "email": "ana@example.com", "password": password}
    )
    assert api.status_code == 422 and api.get_json()["field"] == "password", api.get_json()
    page = client.post(
        "/signup", data={"name": "Ana", "email": "ana@example.com", "password": password}
    )
    assert page.status_code == 422
    assert "password" in page.get_data(as_text=True).lower()
    assert db.session.scalar(select(func.count()).select_from(PartnerUser)) == 0


def test_a_password_made_of_the_users_own_email_is_refused(client):
    response = client.post(
        "/api/v1/customers/",
        json={"name": "Ana", "email": "anasouza1990@example.com", "password": "anasouza1990"},
    )
    assert response.status_code == 422 and response.get_json()["field"] == "password"


def test_a_strong_password_is_taken(client):
    response = client.post(
        "/api/v1/customers/",
        json={"name": "Ana", "email": "ana@example.com", "password": CUSTOMER_PASSWORD},
    )
    assert response.status_code == 201


def test_a_password_that_cannot_be_stored_is_a_400_not_a_500(client):
    response = client.post(
        "/api/v1/customers/",
        json={"name": "Ana", "email": "ana@example.com", "password": "Ingresso-\ud800-Azul-77"},
    )
    assert response.status_code == 400 and response.get_json()["field"] == "password"


def test_staff_passwords_follow_the_same_rule_in_the_dashboard(client):
    make_user("root", "Admin")
    login(client, "root")
    role_id = current_app.appbuilder.sm.find_role("Partner").id
    form = {
        "first_name": "Weak",
        "last_name": "Staff",
        "username": "weak",
        "email": "weak@example.com",
        "active": "y",
        "roles": [str(role_id)],
        "password": "12345678",
        "conf_password": "12345678",
    }
    refused = client.post("/users/add", data=form)
    assert refused.status_code == 200 and "too easy to guess" in refused.get_data(as_text=True)
    assert current_app.appbuilder.sm.find_user(username="weak") is None
    taken = client.post("/users/add", data={**form, "password": NEW_PASSWORD,
                                            "conf_password": NEW_PASSWORD})  # fmt: skip
    assert taken.status_code == 302
    assert current_app.appbuilder.sm.find_user(username="weak") is not None


def test_reset_my_password_refuses_a_common_password(client):
    make_user("gina", "Gate")
    login(client, "gina")
    weak = client.post(
        "/resetmypassword/form", data={"password": "password1", "conf_password": "password1"}
    )
    assert "too easy to guess" in weak.get_data(as_text=True)
    assert _signed_in(client)  # nothing changed: the session goes on
    client.get("/logout/")
    login(client, "gina")  # the old password still works


def test_users_created_with_a_password_in_clear_follow_the_rule(app):
    """The CLI (flask fab create-admin, create-user) and the demo go through add_user."""
    sm = app.appbuilder.sm
    with pytest.raises(accounts.WeakPassword):
        sm.add_user("cli", "Cli", "User", "cli@example.com", [sm.find_role("Admin")], "admin123")
    assert sm.find_user(username="cli") is None
    assert sm.add_user(
        "cli", "Cli", "User", "cli@example.com", [sm.find_role("Admin")], password=NEW_PASSWORD
    )


@pytest.mark.parametrize(
    "body",
    [
        '{"username": "alice", "password": "x\\ud800", "provider": "db"}',
        '{"username": "al\\ud800ice", "password": "x", "provider": "db"}',
    ],
)
def test_a_login_that_is_not_valid_text_is_a_400_not_a_500(client, body):
    make_user("alice", "Partner")
    response = client.post("/api/v1/security/login", data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)
