"""The login page: in the shop's look, "E-mail" (customers sign in with their
e-mail, staff with either), links to the password reset and to the sign-up, FAB's form fields
and CSRF token kept, failed sign-ins and refusals shown."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.support.apps import another_app
from tests.support.builders import PASSWORD, make_user
from tests.support.pages import another_client, path_of, text


def test_the_login_page_looks_like_the_shop_and_links_to_reset_and_sign_up(
    client: FlaskClient,
) -> None:
    page = text(client.get("/login/?next=/orders"))
    assert "/static/shop.css" in page
    assert '<label for="username">E-mail\n' in page
    assert "Staff: your e-mail or your username." in page
    assert 'name="username"' in page and 'name="password"' in page
    assert '<a href="/password-reset" id="forgot-password">Forgot your password?</a>' in page
    assert 'href="/signup?next=/orders" id="sign-up"' in page
    pt = text(client.get("/login/", headers={"Accept-Language": "pt-BR"}))
    assert "Equipe: seu e-mail ou seu nome de usuário." in pt and "Esqueceu sua senha?" in pt


def test_staff_sign_in_by_username_or_e_mail_and_a_wrong_password_is_said(
    client: FlaskClient,
) -> None:
    make_user("alice", "Partner")
    for login in ("alice", "alice@example.com"):
        browser = another_client(client)
        response = browser.post("/login/", data={"username": login, "password": PASSWORD})
        assert response.status_code == 302 and not path_of(response).startswith("/login"), login
    browser = another_client(client)
    wrong = browser.post("/login/", data={"username": "alice", "password": "nope"})
    assert path_of(wrong).startswith("/login/")
    assert 'class="flash flash-warning"' in text(browser.get(path_of(wrong)))


def test_the_form_carries_its_csrf_token_and_needs_it(app: Flask) -> None:
    with another_app(app, WTF_CSRF_ENABLED=True) as guarded:
        make_user("alice", "Partner")
        browser = guarded.test_client()
        assert (
            browser.post("/login/", data={"username": "alice", "password": PASSWORD}).status_code
            != 302
        )
        page = text(browser.get("/login/"))
        token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        signed_in = browser.post(
            "/login/", data={"username": "alice", "password": PASSWORD, "csrf_token": token}
        )
        assert signed_in.status_code == 302 and not path_of(signed_in).startswith("/login")
