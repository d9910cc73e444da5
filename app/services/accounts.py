"""Accounts: the password rule and the sign-in sessions of platform users (staff and customers).

**Passwords.** One rule for every way a password is set (sign-up, the dashboard's user and
password forms, the CLI, the demo): at least MIN_PASSWORD characters and not easy to guess,
as zxcvbn (Dropbox's estimator: common-password lists, dictionaries, names, keyboard patterns,
repeats, sequences, dates, l33t) scores it, at least PASSWORD_MIN_STRENGTH of 4 (3 by default:
about 10^8 guesses or more). The user's own names and email count as guessable.

**Sessions.** A browser's session cookie is signed, not stored: a copy of it kept working after
logout and after a password change. Each sign-in now records a row (LoginSession) named by a
random id the cookie carries; a request's user is loaded only while that row exists and is
younger than the session lifetime. Logout deletes the row. ``end_sessions`` (a password change,
a reset, a deactivation, two-factor turned on or off) deletes every row of the user and bumps
its ``session_epoch``, which every API token carries: older access and refresh tokens are then
refused (app/views/security.py).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from typing import Any

from blinker import Namespace
from flask import current_app
from flask_babel import gettext
from sqlalchemy import ColumnElement, delete, exists
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash
from zxcvbn import zxcvbn

from app.i18n import current_locale
from app.models import DomainError, LoginSession, PartnerUser
from app.models.base import utcnow
from app.services.after_commit import after_commit
from app.services.checkin import scanners

MIN_PASSWORD = 8
MAX_PASSWORD = 128
# zxcvbn refuses longer input; a password whose first 72 characters are strong is strong.
_SCORED_LENGTH = 72

#: Sent with ``user_id`` once the sessions of a user have ended (after the commit): processes
#: drop what they keep about its tokens.
sessions_ended = Namespace().signal("sessions-ended")


class WeakPassword(DomainError):
    code = "weak_password"


def password_problem(password: str, user_inputs: Iterable[str] = ()) -> str | None:
    """Why ``password`` may not be used, or None when it may."""
    password = password or ""
    if len(password) < MIN_PASSWORD:
        return gettext("The password needs at least %(min)s characters.", min=MIN_PASSWORD)
    if len(password) > MAX_PASSWORD:
        return gettext("The password is too long (%(max)s characters at most).", max=MAX_PASSWORD)
    if not storable(password):
        return gettext("The password has characters that cannot be stored.")
    guessable = [word for value in user_inputs for word in _words(value)]
    result = zxcvbn(password[:_SCORED_LENGTH], user_inputs=guessable)
    if result["score"] >= current_app.config["PASSWORD_MIN_STRENGTH"]:
        return None
    feedback = result.get("feedback") or {}
    hint = feedback.get("warning") or " ".join(feedback.get("suggestions") or [])
    if current_locale() != "en":
        hint = ""  # zxcvbn's hints are English only
    reason = f" {hint.rstrip('.')}." if hint else ""
    return gettext(
        "This password is too easy to guess.%(reason)s Use a longer one: a few unrelated words "
        "make a good password.",
        reason=reason,
    )


def storable(*values: str) -> bool:
    """Whether each value is text the database can hold (no lone surrogate such as a JSON
    "\\ud800"): sign-in refuses others before it looks anything up."""
    try:
        for value in values:
            value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_password(password: str, user_inputs: Iterable[str] = ()) -> None:
    problem = password_problem(password, user_inputs)
    if problem is not None:
        raise WeakPassword(problem, field="password")


def _words(value: str | None) -> list[str]:
    """A name or an email as zxcvbn's user inputs: whole, and its parts."""
    value = (value or "").strip().lower()
    if not value:
        return []
    local = value.partition("@")[0]
    parts = [part for part in local.replace(".", " ").replace("-", " ").split() if part]
    return [value, local, *parts]


def hash_password(password: str) -> str:
    config = current_app.config
    return generate_password_hash(
        password,
        method=config.get("FAB_PASSWORD_HASH_METHOD", "scrypt"),
        salt_length=config.get("FAB_PASSWORD_HASH_SALT_LENGTH", 16),
    )


def set_password(session: Session, user: PartnerUser, password: str) -> None:
    """Change (or reset) ``user``'s password: checked, hashed, and every session and API token
    of the user ended. Commits."""
    check_password(password, _inputs_of(user))
    user.password = hash_password(password)
    end_sessions(session, user)
    session.commit()


def _inputs_of(user: Any) -> list[str]:
    return [user.username, user.email, user.first_name, user.last_name]


def end_sessions(session: Session, user: PartnerUser) -> None:
    """End every session and API token of ``user`` (in the caller's transaction)."""
    user.end_sessions()
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    user_id = user.id
    after_commit(session, lambda: forget_cached(user_id))


def forget_cached(user_id: int) -> None:
    """Drop what is kept about a changed user's tokens: a gate user's scanner (Redis) and this
    process's cached user (the signal; other processes' expire within
    JWT_USER_CACHE_SECONDS)."""
    scanners.staff_changed(user_id)
    sessions_ended.send(None, user_id=user_id)


def start_session(session: Session, user_id: int) -> str:
    """Record a new sign-in of ``user_id``; returns the id its session cookie carries. Rows past
    the session lifetime (browsers closed without logging out) go at the same time. Commits."""
    session.execute(delete(LoginSession).where(LoginSession.created_at < _oldest_live()))
    session_id = secrets.token_urlsafe(32)
    session.add(LoginSession(id=session_id, user_id=user_id, created_at=utcnow()))
    session.commit()
    return session_id


def end_session(session: Session, session_id: str) -> None:
    """Log one browser out: its cookie, even copied, no longer signs anyone in. Commits."""
    session.execute(delete(LoginSession).where(LoginSession.id == session_id))
    session.commit()


def is_live(session_id: str, user_id: int) -> ColumnElement[bool]:
    """SQL: the session ``session_id`` of ``user_id`` has not ended (to add to the user's load,
    no extra round trip)."""
    return exists().where(
        LoginSession.id == session_id,
        LoginSession.user_id == user_id,
        LoginSession.created_at >= _oldest_live(),
    )


def _oldest_live() -> dt.datetime:
    return utcnow() - current_app.permanent_session_lifetime
