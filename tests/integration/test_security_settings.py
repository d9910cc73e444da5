"""Browser-facing hardening (found by a security review): headers on every answer, the session
cookie's flags, the password rule of the dashboard's forms, client addresses behind a proxy."""

from __future__ import annotations

import pytest

from app.config import load_config
from tests.support.apps import another_app
from tests.support.builders import PASSWORD, login, make_user

pytestmark = pytest.mark.usefixtures("db_context")


@pytest.mark.parametrize("path", ["/", "/login/", "/gate/", "/api/v1/catalog/events"])
def test_no_page_can_be_framed_by_another_site_or_leak_its_address(client, path):
    headers = client.get(path).headers
    assert headers["X-Frame-Options"] == "SAMEORIGIN"
    assert headers["Content-Security-Policy"] == "frame-ancestors 'self'"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


def test_the_session_cookie_is_lax_and_secure_in_production():
    settings = {
        "APP_ENV": "production",
        "SECRET_KEY": "x" * 64,
        "DATABASE_URL": "postgresql://h/db",
    }
    production = load_config(settings)
    assert production["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert production["SESSION_COOKIE_SECURE"] is True
    plain_http = load_config({**settings, "SESSION_COOKIE_SECURE": "false"})
    assert plain_http["SESSION_COOKIE_SECURE"] is False
    assert load_config({"APP_ENV": "development"})["SESSION_COOKIE_SECURE"] is False


def test_a_login_sets_a_same_site_cookie(app, client):
    make_user("alice", "Admin")
    response = client.post("/login/", data={"username": "alice", "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie


def test_reset_my_password_follows_the_sign_up_rule(client):
    make_user("gina", "Gate")
    login(client, "gina")
    short = client.post("/resetmypassword/form", data={"password": "a", "conf_password": "a"})
    assert "at least 8 characters" in short.get_data(as_text=True)
    client.get("/logout/")
    login(client, "gina")  # the old password still works: nothing was changed


def test_behind_a_proxy_each_client_has_its_own_address(app):
    with another_app(app, PROXY_HOPS=1) as proxied:
        seen = []
        proxied.before_request(lambda: seen.append(__import__("flask").request.remote_addr))
        client = proxied.test_client()
        client.get("/healthz", headers={"X-Forwarded-For": "203.0.113.7"})
        client.get("/healthz", headers={"X-Forwarded-For": "198.51.100.9"})
    assert seen == ["203.0.113.7", "198.51.100.9"]
