"""Two-factor sign-in for staff: a time-based one-time code (TOTP, RFC 6238: six digits every
30 seconds, from any authenticator app) asked after the password.

- Who: staff (TWO_FACTOR_ROLES) may turn it on from the dashboard; users with a role in
  TOTP_REQUIRED_ROLES (Admin and Finance in production) must, and can do nothing else once
  signed in until they have.
- The secret is kept encrypted (Fernet, a key derived from TOTP_KEY, SECRET_KEY by default): it
  must be readable to check codes, but a copy of the database alone does not give it away.
- A code is good once: the time step of the last accepted code is stored, and a code is taken
  only for a later step, by one conditional UPDATE (two requests with one code: one wins).
  Codes of the step before and after the current one are accepted (clocks drift).
- Turning it on or off ends the user's other sessions (accounts.end_sessions).
"""

from __future__ import annotations

import base64
import functools
import hmac
import time

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from flask_babel import gettext
from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from app.models import DomainError, PartnerUser
from app.models.errors import Conflict, Forbidden
from app.services import accounts

STEP_SECONDS = 30
clock = time.time  # the time codes are checked at (tests set it)
#: Roles that may turn two-factor sign-in on (customers sign in to the shop without it).
TWO_FACTOR_ROLES = frozenset({"Admin", "Finance", "Partner", "Gate"})


class WrongCode(DomainError):
    status = 401
    code = "totp_invalid"


def may_enrol(user: PartnerUser) -> bool:
    return bool(user.role_names() & TWO_FACTOR_ROLES)


def required_for(user: PartnerUser) -> bool:
    """Whether ``user`` must sign in with a code (a role in TOTP_REQUIRED_ROLES)."""
    required = current_app.config.get("TOTP_REQUIRED_ROLES") or ()
    return bool(required) and bool(user.role_names() & set(required))


def must_enrol(user: PartnerUser) -> bool:
    return required_for(user) and not user.has_two_factor


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str) -> str:
    """The otpauth:// address an authenticator app reads from the QR code."""
    issuer = current_app.config.get("APP_NAME", "Bilheteria")
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(secret: str, account: str) -> str:
    """The enrolment QR code as inline SVG (no script, no image request)."""
    return segno.make(provisioning_uri(secret, account), error="m").svg_inline(scale=5)


def seal(secret: str) -> str:
    return _fernet(_key_material()).encrypt(secret.encode()).decode()


def unseal(sealed: str) -> str:
    try:
        return _fernet(_key_material()).decrypt(sealed.encode()).decode()
    except InvalidToken as exc:
        # TOTP_KEY (or SECRET_KEY) changed since enrolment: an admin resets the user's
        # two-factor sign-in and the user enrols again.
        raise Conflict(
            gettext("This account's two-factor secret cannot be read: ask an admin.")
        ) from exc


def _key_material() -> str:
    return current_app.config.get("TOTP_KEY") or current_app.config["SECRET_KEY"]


@functools.lru_cache(maxsize=4)
def _fernet(material: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"bilheteria totp").derive(
        material.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step (around ``now``) whose code is ``code``, if any."""
    code = "".join((code or "").split())
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    current = totp.timecode(clock() if now is None else now)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _take_step(session: Session, user_id: int, step: int) -> bool:
    """Record ``step`` as used, if no code of it or of a later step was accepted before."""
    taken = session.execute(
        update(PartnerUser)
        .where(
            PartnerUser.id == user_id,
            or_(PartnerUser.totp_last_step.is_(None), PartnerUser.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    return taken.rowcount == 1


def verify(session: Session, user: PartnerUser, code: str) -> None:
    """Accept ``code`` as ``user``'s second factor, once; WrongCode otherwise. Commits."""
    if user.totp_secret is None:
        raise WrongCode(
            gettext("Two-factor sign-in is not turned on for this account."), field="totp"
        )
    step = matching_step(unseal(user.totp_secret), code)
    if step is None or not _take_step(session, user.id, step):
        session.rollback()
        raise WrongCode(gettext("Wrong or already used code: enter the current one."), field="totp")
    session.commit()


def enrol(session: Session, user: PartnerUser, sealed_secret: str, code: str) -> None:
    """Turn two-factor sign-in on with the secret shown to the user (sealed), once the user has
    proved its app holds it with a current code. Ends the user's sessions. Commits."""
    if not may_enrol(user):
        raise Forbidden(gettext("Two-factor sign-in is for staff accounts."))
    if user.has_two_factor:
        raise Conflict(gettext("Two-factor sign-in is already on."))
    step = matching_step(unseal(sealed_secret), code)
    if step is None:
        raise WrongCode(gettext("Wrong code: enter the one your app shows now."), field="totp")
    user.totp_secret = sealed_secret
    user.totp_last_step = step  # the confirming code does not also sign in
    accounts.end_sessions(session, user)
    session.commit()


def disable(session: Session, user: PartnerUser, code: str) -> None:
    """Turn it off with a current code, unless the user's role requires it. Commits."""
    if required_for(user):
        raise Forbidden(gettext("Your role requires two-factor sign-in: it stays on."))
    verify(session, user, code)
    reset(session, user)


def reset(session: Session, user: PartnerUser) -> None:
    """Forget ``user``'s secret (an admin, for a lost phone); the user enrols again. Ends the
    user's sessions. Commits."""
    user.totp_secret = None
    user.totp_last_step = None
    accounts.end_sessions(session, user)
    session.commit()
