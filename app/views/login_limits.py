"""One sign-in budget: the form login (/login/ and its code step) and the API login
(/api/v1/security/login, the shop's and the gate page's too) draw on the same counters,
RATELIMIT_LOGIN (10 a minute) per client address and the same per account. Apart, each
endpoint allowed 10 a minute per address, 20 together, and an attacker spreading guesses at one
account over many addresses was not limited at all.

The account is the user the username or email names, case-insensitively, so that guessing by
username and by email share one count; a name that matches no user is counted by itself (hashed:
keys stay short). The code step counts against the account that passed the password.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Flask, Response, current_app, flash, request
from flask_appbuilder.security.forms import LoginForm_db
from flask_babel import gettext
from flask_limiter.util import get_remote_address
from sqlalchemy import func, or_, select

from app.extensions import db
from app.i18n import N_
from app.models import PartnerUser
from app.services import accounts
from app.views import two_factor

# The form login, its code step and the API login (page endpoints answer with the form).
PAGE_ENDPOINTS = ("AuthDBView.login", "AuthDBView.login_code")
API_ENDPOINTS = ("SecurityApi.login",)
REFUSAL = N_("Too many sign-in attempts: wait a minute and try again.")


def address_key() -> str:
    return f"ip:{get_remote_address()}"


def account_key() -> str:
    pending = request.endpoint == "AuthDBView.login_code" and two_factor.pending_user()
    if pending:
        return f"user:{pending.id}"
    name = _attempted_login()
    if not name or not accounts.storable(name):
        return "name:" + hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:32]
    user_id = db.session.scalar(
        select(PartnerUser.id)
        .where(or_(func.lower(PartnerUser.username) == name, func.lower(PartnerUser.email) == name))
        .order_by(PartnerUser.id)
        .limit(1)
    )
    if user_id is not None:
        return f"user:{user_id}"
    return "name:" + hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:32]


def _attempted_login() -> str:
    if request.is_json:
        body = request.get_json(silent=True)
        value = body.get("username") if isinstance(body, dict) else None
    else:
        value = request.form.get("username")
    return value.strip().lower()[:320] if isinstance(value, str) else ""


def page_refusal(_limit: Any) -> Response:
    """The sign-in form again, with the reason, as a 429."""
    flash(gettext(REFUSAL), "danger")
    appbuilder = current_app.appbuilder
    auth_view = appbuilder.sm.auth_view
    page = auth_view.render_template(
        auth_view.login_template, title=auth_view.title, form=LoginForm_db(), appbuilder=appbuilder
    )
    return Response(page, status=429, mimetype="text/html")


def apply(app: Flask) -> None:
    """Put the shared sign-in limits on every sign-in endpoint (POST only)."""
    limiter = app.appbuilder.sm.limiter
    limit = app.config["RATELIMIT_LOGIN"]
    for endpoint in (*PAGE_ENDPOINTS, *API_ENDPOINTS):
        on_breach = page_refusal if endpoint in PAGE_ENDPOINTS else None
        view = app.view_functions[endpoint]
        for scope, key_func in (("login-address", address_key), ("login-account", account_key)):
            view = limiter.shared_limit(
                limit, scope=scope, key_func=key_func, methods=["POST"], on_breach=on_breach
            )(view)
        app.view_functions[endpoint] = view
