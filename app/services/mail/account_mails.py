"""Mails to accounts (see messages.py for how a kind is registered and rendered): the
password-reset link and the sign-up's address confirmation."""

from __future__ import annotations

from typing import Any

from flask import current_app, url_for
from flask_babel import gettext
from sqlalchemy.orm import Session

from app.models import Customer, PartnerUser, PasswordReset
from app.services import email_confirmation, password_reset
from app.services.mail.messages import Gone, Message, render_pair, renderer


@renderer(password_reset.MAIL_KIND)
def password_reset_mail(session: Session, params: dict[str, Any]) -> Message:
    """The link, while it may be used: a mail whose link was used, voided or expired before it
    went out is not sent. Its token is computed here from the row and SECRET_KEY, never read
    from the params (they hold only the reset's id: password_reset.py says why)."""
    reset_id = params.get("reset_id")
    reset = session.get(PasswordReset, reset_id) if isinstance(reset_id, int) else None
    if not password_reset.usable(reset):
        raise Gone("the password-reset link was used, voided or expired")
    assert reset is not None
    token = password_reset.link_token(reset)
    if password_reset.token_hash(token) != reset.token_hash:
        raise Gone("the password-reset link was made with another SECRET_KEY")
    user = session.get(PartnerUser, reset.user_id)
    if user is None:
        raise Gone("the user is gone")
    return render_pair(
        "password_reset",
        gettext("Reset your Bilheteria password"),
        name=user.first_name,
        link=url_for("accounts.reset_form", token=token, _external=True),
        minutes=current_app.config["PASSWORD_RESET_MINUTES"],
    )


@renderer(email_confirmation.MAIL_KIND)
def email_confirm_mail(session: Session, params: dict[str, Any]) -> Message:
    """The signed link, written now (it is valid CONFIRM_DAYS from here); nothing to send once
    the address is confirmed."""
    customer_id = params.get("customer_id")
    customer = session.get(Customer, customer_id) if isinstance(customer_id, int) else None
    if customer is None or customer.email_confirmed_at is not None:
        raise Gone("the customer is gone or already confirmed")
    token = email_confirmation.link_token(customer)
    return render_pair(
        "email_confirm",
        gettext("Confirm your e-mail address"),
        name=customer.name,
        link=url_for("accounts.confirm_email", token=token, _external=True),
        days=email_confirmation.CONFIRM_DAYS,
    )
