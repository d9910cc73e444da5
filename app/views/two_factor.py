"""Two-factor sign-in in the dashboard (app/services/two_factor.py): the form login's second
step, the enrolment page, and the rule that a user whose role requires it does nothing else
until enrolled.

The form login is FAB's, with one branch added: a user with two-factor sign-in on is not signed
in after the password. The browser keeps, in its signed session, who passed the password and
when (PENDING_LOGIN, good for PENDING_SECONDS), and /login/code asks for the code. Both steps
count against the one sign-in limit per address and per account (app/views/login_limits.py).
"""

from __future__ import annotations

import time
from typing import Any

from flask import (
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    request,
    session,
    url_for,
)
from flask_appbuilder._compat import as_unicode
from flask_appbuilder.baseviews import BaseView
from flask_appbuilder.security.decorators import has_access, no_cache
from flask_appbuilder.security.forms import LoginForm_db
from flask_appbuilder.security.views import AuthDBView as FabAuthDBView
from flask_appbuilder.utils.base import get_safe_redirect
from flask_appbuilder.views import expose
from flask_babel import gettext, lazy_gettext
from flask_login import current_user, login_user

from app.extensions import db
from app.models import DomainError
from app.services import accounts, two_factor

PENDING_LOGIN = "two_factor_pending"
PENDING_SECONDS = 300
# The secret being enrolled, sealed (the session cookie is signed, not encrypted).
PENDING_SECRET = "two_factor_secret"  # noqa: S105 - a session key, not a secret


class AuthDBView(FabAuthDBView):
    """FAB's form login with the two-factor step. Same class name: the endpoints
    (``AuthDBView.login``, rate-limited, and FAB's login URL) stay."""

    # The shop's look, "E-mail or username", the reset and sign-up links; FAB's fields and CSRF.
    login_template = "security/login.html"
    code_template = "security/login_code.html"

    @expose("/login/", methods=["GET", "POST"])
    @no_cache
    def login(self) -> Any:
        if g.user is not None and g.user.is_authenticated:
            return redirect(self._get_safe_next_url())
        form = LoginForm_db()
        if form.validate_on_submit():
            next_url = get_safe_redirect(request.args.get("next", ""))
            username, password = form.username.data, form.password.data
            user = accounts.storable(username, password) and self.appbuilder.sm.auth_user_db(
                username, password
            )
            if not user:
                flash(as_unicode(self.invalid_login_message), "warning")
                return redirect(self.appbuilder.get_url_for_login_with(next_url))
            if user.has_two_factor:
                session[PENDING_LOGIN] = {
                    "user": user.id,
                    "epoch": user.session_epoch,
                    "at": int(time.time()),
                    "next": next_url,
                }
                return redirect(url_for(".login_code"))
            login_user(user, remember=False)
            return redirect(next_url)
        return self.render_template(
            self.login_template, title=self.title, form=form, appbuilder=self.appbuilder
        )

    @expose("/login/code", methods=["GET", "POST"])
    @no_cache
    def login_code(self) -> Any:
        user = pending_user()
        if user is None:
            session.pop(PENDING_LOGIN, None)
            flash(gettext("Sign in again: the code is asked right after the password."), "warning")
            return redirect(self.appbuilder.get_url_for_login)
        error = None
        if request.method == "POST":
            try:
                two_factor.verify(db.session, user, request.form.get("totp", ""))
            except DomainError as err:
                db.session.rollback()
                error = err.message
            else:
                next_url = session.pop(PENDING_LOGIN)["next"]
                login_user(user, remember=False)
                return redirect(get_safe_redirect(next_url))
        return self.render_template(
            self.code_template, title="Two-factor sign-in", error=error, appbuilder=self.appbuilder
        ), (401 if error else 200)


def pending_user() -> Any:
    """The user who passed the password in this browser within PENDING_SECONDS, and whose
    sessions have not been ended since (a password change in between), else None."""
    pending = session.get(PENDING_LOGIN)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None
    user = current_app.appbuilder.sm.get_user_by_id(int(pending["user"]))
    if user is None or not user.is_active or user.session_epoch != pending.get("epoch"):
        return None
    return user


class TwoFactorView(BaseView):
    """A staff user's two-factor sign-in: the QR code and secret to enrol with, a code to
    confirm, and turning it off (unless the role requires it)."""

    route_base = "/two-factor"
    default_view = "index"
    template = "security/two_factor.html"

    @expose("/")
    @has_access
    def index(self) -> Any:
        user = current_user._get_current_object()
        qr = secret = None
        if not user.has_two_factor and two_factor.may_enrol(user):
            sealed = session.get(PENDING_SECRET) or two_factor.seal(two_factor.new_secret())
            session[PENDING_SECRET] = sealed
            secret = two_factor.unseal(sealed)
            qr = two_factor.qr_svg(secret, user.username)
        return self.render_template(
            self.template,
            user=user,
            qr=qr,
            secret=secret,
            may_enrol=two_factor.may_enrol(user),
            required=two_factor.required_for(user),
            appbuilder=self.appbuilder,
        )

    @expose("/enrol", methods=["POST"])
    @has_access
    def enrol(self) -> Any:
        user = current_user._get_current_object()
        sealed = session.get(PENDING_SECRET)
        if sealed is None:
            return redirect(url_for(".index"))
        try:
            two_factor.enrol(db.session, user, sealed, request.form.get("totp", ""))
        except DomainError as err:
            db.session.rollback()
            flash(err.message, "danger")
            return redirect(url_for(".index"))
        session.pop(PENDING_SECRET, None)
        login_user(user)  # the user's sessions ended: this browser goes on in a new one
        flash(
            gettext("Two-factor sign-in is on: sign-ins now ask for a code from your app."),
            "success",
        )
        return redirect(url_for(".index"))

    @expose("/disable", methods=["POST"])
    @has_access
    def disable(self) -> Any:
        user = current_user._get_current_object()
        try:
            two_factor.disable(db.session, user, request.form.get("totp", ""))
        except DomainError as err:
            db.session.rollback()
            flash(err.message, "danger")
            return redirect(url_for(".index"))
        login_user(user)
        flash(gettext("Two-factor sign-in is off."), "info")
        return redirect(url_for(".index"))


# What a user who must enrol may still reach: the enrolment page, logging out, static files.
_OPEN_WHILE_ENROLLING = frozenset(
    {"TwoFactorView.index", "TwoFactorView.enrol", "AuthDBView.logout", "static"}
)


def require_enrolment() -> Any:
    """Before each request: a signed-in user whose role requires two-factor sign-in and who has
    not turned it on is sent to the enrolment page (an API call gets 403)."""
    if not current_app.config.get("TOTP_REQUIRED_ROLES") or "_user_id" not in session:
        return None
    endpoint = request.endpoint or ""
    if endpoint in _OPEN_WHILE_ENROLLING or endpoint.endswith(".static"):
        return None
    user = current_user
    if not user.is_authenticated or not two_factor.must_enrol(user):
        return None
    message = lazy_gettext("Your role requires two-factor sign-in: turn it on to continue.")
    if request.path.startswith("/api/"):
        return jsonify(error="two_factor_required", message=message, status=403), 403
    flash(message, "warning")
    return redirect(url_for("TwoFactorView.index"))
