"""Accounts people can recover: the password-reset pages and API, and the customer's e-mail
confirmation link (rules: app/services/password_reset.py, app/services/email_confirmation.py).

Asking for a reset answers the same, page or API, whether or not the address has an account,
and as fast: the request only hands the address to a task (``password_reset.ask``). Over the
per-client-address limit (RATELIMIT_PASSWORD_RESET) the page and the API answer 429: that limit
is about the asker, and says nothing of the address. The per-account limit is the service's
(the worker's), and silent.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_appbuilder.api import BaseApi, expose, safe
from flask_babel import gettext, lazy_gettext
from flask_limiter.util import get_remote_address

from app.extensions import db
from app.i18n import N_
from app.models import DomainError
from app.services import email_confirmation, password_reset
from app.views.base import current_customer

bp = Blueprint("accounts", __name__, template_folder="../templates")

ASKED = N_("If the address has an account, a link to choose a new password is on its way to it.")
TOO_MANY = N_("Too many requests from your connection: wait a while and try again.")
# The limited POST endpoints, with their limits' scopes.
LIMITED = (
    ("accounts.ask_reset", "password-reset"),
    ("PasswordResetApi.request_reset", "password-reset"),
    ("accounts.resend_confirmation", "confirm-resend"),
)


@bp.context_processor
def inject_appbuilder() -> dict[str, Any]:
    return {"appbuilder": current_app.appbuilder}


@bp.route("/password-reset", methods=["GET", "POST"])
def ask_reset() -> Any:
    """The e-mail form; the same answer for every address."""
    if request.method == "POST":
        email = request.form.get("email", "")
        if not email.strip():
            errors = {"email": gettext("Give your e-mail address.")}
            return _ask_page(errors=errors, email=email), 422
        password_reset.ask(email)
        return _ask_page(sent=True, email=email)
    return _ask_page()


def _ask_page(*, sent: bool = False, email: str = "", errors: Any = None) -> str:
    return render_template(
        "accounts/password_reset_ask.html", sent=sent, email=email, errors=errors or {}
    )


@bp.route("/password-reset/<token>", methods=["GET", "POST"])
def reset_form(token: str) -> Any:
    """The new password, for a link that may be used; else says why, and offers to ask again."""
    errors: dict[str, str] = {}
    try:
        if request.method == "POST":
            password = request.form.get("password", "")
            if password != request.form.get("password_again", ""):
                password_reset.valid_link(db.session, token)
                errors["password_again"] = gettext("The two passwords differ.")
            else:
                password_reset.reset_password(db.session, token, password)
                flash(gettext("Your password is changed: log in with the new one."), "success")
                return redirect(current_app.appbuilder.get_url_for_login)
        else:
            password_reset.valid_link(db.session, token)
    except password_reset.InvalidLink as err:
        db.session.rollback()
        page = render_template("accounts/link_invalid.html", message=err.message, reset=True)
        return _private(make_response(page, 410))
    except DomainError as err:
        db.session.rollback()
        errors[err.field or "password"] = err.message
    page = render_template("accounts/password_reset_form.html", errors=errors)
    return _private(make_response(page, 422 if errors else 200))


def _private(response: Response) -> Response:
    """A page whose address holds a live token: kept by no cache."""
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/confirm-email/<token>")
def confirm_email(token: str) -> Any:
    try:
        email_confirmation.confirm(db.session, token)
    except email_confirmation.BadConfirmationLink as err:
        db.session.rollback()
        expired = isinstance(err, email_confirmation.ExpiredConfirmationLink)
        customer = current_customer()
        page = render_template(
            "accounts/link_invalid.html",
            message=err.message,
            resend=customer is not None and customer.email_confirmed_at is None,
            signed_in=customer is not None,
        )
        return page, 410 if expired else 404
    flash(gettext("Your e-mail address is confirmed. Thank you!"), "success")
    return redirect(url_for("shop.orders"))


@bp.post("/confirm-email/resend")
def resend_confirmation() -> Any:
    customer = current_customer()
    if customer is None:
        return redirect(f"{current_app.appbuilder.get_url_for_login}?next={url_for('shop.orders')}")
    if email_confirmation.resend(db.session, customer):
        flash(
            gettext("A new confirmation link is on its way to %(email)s.", email=customer.email),
            "success",
        )
    else:
        flash(gettext("Your e-mail address is already confirmed."), "info")
    return redirect(url_for("shop.orders"))


class PasswordResetApi(BaseApi):
    """The reset for apps: ask for the link, then send its token with the new password."""

    resource_name = "security"
    openapi_spec_tag = "Security"

    @expose("/password-reset", methods=["POST"])
    @safe
    def request_reset(self) -> Any:
        """E-mail a password-reset link to the address's account, if it has one.
        ---
        post:
          summary: Ask for a password-reset link
          description: Answers 202 whether or not the address has an account; a link is
            e-mailed only to an active account's address, a few times an hour at most.
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [email]
                  properties:
                    email: {type: string, maxLength: 320}
          responses:
            202:
              description: If the address has an account, a link is on its way to it
            400:
              $ref: '#/components/responses/400'
            429:
              description: Too many requests from this client address
        """
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("email"), str):
            return self.response_400(message=lazy_gettext("Send a JSON object with an email."))
        password_reset.ask(body["email"])
        return self.response(202, message=gettext(ASKED))

    @expose("/password-reset/confirm", methods=["POST"])
    @safe
    def confirm(self) -> Any:
        """Set a new password with the token of a reset link.
        ---
        post:
          summary: Choose a new password with a reset link's token
          description: Ends every session and token of the account, refresh tokens included.
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [token, password]
                  properties:
                    token: {type: string}
                    password: {type: string, minLength: 8, maxLength: 128}
          responses:
            204:
              description: The password is changed
            400:
              $ref: '#/components/responses/400'
            422:
              description: invalid_link (used, voided, expired or unknown) or weak_password
        """
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not all(
            isinstance(body.get(key), str) for key in ("token", "password")
        ):
            return self.response_400(
                message=lazy_gettext("Send a JSON object with a token and a password.")
            )
        try:
            password_reset.reset_password(db.session, body["token"], body["password"])
        except DomainError as err:
            db.session.rollback()
            return self.response(422, **err.to_json())
        return make_response("", 204)


def _page_refusal(_limit: Any) -> Response:
    """The form again, with the reason, as a 429."""
    flash(gettext(TOO_MANY), "error")
    if request.endpoint == "accounts.resend_confirmation":
        return redirect(url_for("shop.orders"))
    return Response(_ask_page(), status=429, mimetype="text/html")


def apply_limits(app: Flask) -> None:
    """Per client address, on POST: the page and the API share one budget."""
    limiter = app.appbuilder.sm.limiter
    limit = app.config["RATELIMIT_PASSWORD_RESET"]
    for endpoint, scope in LIMITED:
        on_breach = _page_refusal if endpoint.startswith("accounts.") else None
        app.view_functions[endpoint] = limiter.shared_limit(
            limit, scope=scope, key_func=get_remote_address, methods=["POST"], on_breach=on_breach
        )(app.view_functions[endpoint])
