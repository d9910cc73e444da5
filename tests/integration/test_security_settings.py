"""Browser-facing hardening (found by a security review): headers on every answer, the session
cookie's flags, the password rule of the dashboard's forms, client addresses behind a proxy."""

from __future__ import annotations

import re

import pytest

from app.config import PROJECT_ROOT, load_config
from tests.support.apps import another_app
from tests.support.builders import PASSWORD, login, make_user

pytestmark = pytest.mark.usefixtures("db_context")

TEMPLATES = PROJECT_ROOT / "app" / "templates"


@pytest.mark.parametrize("path", ["/", "/login/", "/gate/", "/api/v1/catalog/events"])
def test_no_page_can_be_framed_by_another_site_or_leak_its_address(client, path):
    headers = client.get(path).headers
    assert headers["X-Frame-Options"] == "SAMEORIGIN"
    policy = headers["Content-Security-Policy"].split("; ")
    assert "frame-ancestors 'self'" in policy
    assert any(part.startswith("script-src 'self'") for part in policy)
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


def test_browsers_are_told_to_keep_to_https_in_production(app, client):
    settings = {"APP_ENV": "production", "SECRET_KEY": "x" * 64, "DATABASE_URL": "postgresql://h/d"}
    assert load_config(settings)["HSTS_SECONDS"] == 365 * 24 * 3600
    assert load_config({"APP_ENV": "development"})["HSTS_SECONDS"] == 0
    assert "Strict-Transport-Security" not in client.get("/").headers  # tests: plain HTTP
    with another_app(app, HSTS_SECONDS=86400) as production:
        headers = production.test_client().get("/api/v1/catalog/events").headers
    assert headers["Strict-Transport-Security"] == "max-age=86400"


def _nonce(response):
    policy = response.headers["Content-Security-Policy"]
    found = re.search(r"script-src 'self'(?: 'nonce-([^']+)')?;", policy)
    assert found, policy
    return found[1]


def test_the_dashboards_inline_scripts_carry_the_responses_nonce(client):
    """FAB's templates hold inline scripts (search filters, list actions): each carries this
    response's nonce, which the policy names; no other inline script runs."""
    make_user("root", "Admin")
    login(client, "root")
    first = client.get("/users/list/")
    nonce = _nonce(first)
    scripts = re.findall(r"<script\b([^>]*)>", first.get_data(as_text=True))
    inline = [attrs for attrs in scripts if "src=" not in attrs]
    assert inline and all(f'nonce="{nonce}"' in attrs for attrs in inline)
    assert _nonce(client.get("/users/list/")) != nonce  # one per response


@pytest.mark.parametrize("path", ["/", "/signup", "/gate/"])
def test_our_pages_run_no_inline_script(client, path):
    assert _nonce(client.get(path)) is None


def test_our_templates_hold_no_inline_script():
    """The shop and the gate page keep to script files: no inline script, event handler
    attribute or javascript: address for script-src 'self' to refuse (a JSON data block, the
    pages' texts in their language, is data no browser runs)."""
    offenders = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        text = template.read_text()
        scripts = re.findall(r"<script\b([^>]*)>", text)
        data = 'type="application/json"'
        if any("src=" not in attrs and data not in attrs for attrs in scripts):
            offenders.append(f"{template.name}: inline <script>")
        if re.search(r"\son[a-z]+\s*=", text) or "javascript:" in text.lower():
            offenders.append(f"{template.name}: event handler or javascript: address")
    assert offenders == []
