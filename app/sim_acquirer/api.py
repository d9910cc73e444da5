"""The simulated acquirer's operations: tokenize a card, charge a token, refund a charge,
lose a dispute (chargeback), and publish the daily settlement report."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import current_app
from flask_babel import gettext
from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Integer,
    Row,
    String,
    bindparam,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.extensions import autocommit_engine, db
from app.sim_acquirer.models import SimCharge, SimChargeback, SimRefund, SimToken

TEST_CARDS = {
    "4242424242424242": "approve",
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000119": "processing_error",
    "4000000000000259": "approve_after_delay",
}
SLOW_APPROVAL_SECONDS = 5.0
TOKEN_LIFETIME = dt.timedelta(minutes=30)


class CardError(ValueError):
    """A card field is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ChargeOutcome:
    charge_id: str
    status: str  # "succeeded" | "declined" | "error"
    decline_code: str | None = None
    card: dict[str, Any] | None = None  # brand, last4, exp_month, exp_year of the token


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def luhn_ok(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def brand_of(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"34", "37"}:
        return "amex"
    if 51 <= int(number[:2]) <= 55 or 2221 <= int(number[:4]) <= 2720:
        return "mastercard"
    return "unknown"


def _digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() and int() also take "²" and other scripts' digits."""
    return text.isascii() and text.isdigit()


def _number(value: Any, most: int) -> int | None:
    """A month or year as typed (or a JSON integer): up to ``most`` ASCII digits, else None."""
    text = "" if isinstance(value, bool) else str(value).strip()
    return int(text) if _digits(text) and len(text) <= most else None


def _validated(payload: dict[str, Any], today: dt.date) -> dict[str, Any]:
    number = "".join(str(payload.get("number") or "").split()).replace("-", "")
    if not _digits(number) or not 12 <= len(number) <= 19:
        raise CardError("number", gettext("The card number must have 12 to 19 digits."))
    if not luhn_ok(number):
        raise CardError("number", gettext("The card number is not valid."))
    month = _number(payload.get("exp_month"), 2)
    if month is None or not 1 <= month <= 12:
        raise CardError("exp_month", gettext("Give the expiry month (1-12)."))
    year = _number(payload.get("exp_year"), 4)
    if year is None:
        raise CardError("exp_year", gettext("Give the expiry year."))
    year = year + 2000 if year < 100 else year
    if (year, month) < (today.year, today.month):
        raise CardError("exp_year", gettext("The card has expired."))
    if year > today.year + 25:
        raise CardError("exp_year", gettext("The expiry year is too far ahead."))
    brand = brand_of(number)
    cvc = str(payload.get("cvc") or "").strip()
    if not _digits(cvc) or len(cvc) != (4 if brand == "amex" else 3):
        raise CardError(
            "cvc", gettext("The CVC has %(digits)s digits.", digits=4 if brand == "amex" else 3)
        )
    holder = str(payload.get("holder_name") or "").strip()
    if not holder:
        raise CardError("holder_name", gettext("Give the name on the card."))
    return {
        "brand": brand,
        "last4": number[-4:],
        "exp_month": month,
        "exp_year": year,
        "holder_name": holder[:150],
        "behaviour": TEST_CARDS.get(number, "approve"),
    }


def tokenize(payload: dict[str, Any]) -> dict[str, Any]:
    """Validate card data and exchange it for a token; the number and CVC are dropped here."""
    return store_token(autocommit_engine(current_app), validated(payload))


def validated(payload: dict[str, Any]) -> dict[str, Any]:
    """What the acquirer keeps of the card data in ``payload`` (never the number or the CVC);
    CardError names the first field that is wrong, in the request's language when there is
    one."""
    return _validated(payload, _now().date())


def store_token(autocommit: Engine, card: dict[str, Any]) -> dict[str, Any]:
    """A new single-use token for the ``validated`` card, stored in one INSERT on an engine in
    autocommit (no app context needed: the tokenize fast path calls this before Flask), and the
    answer the card form gets."""
    token = "tok_" + secrets.token_urlsafe(18)
    with autocommit.connect() as conn:
        conn.execute(_INSERT_TOKEN, {"token": token, "created_at": _now(), **card})
    return {
        "token": token,
        "brand": card["brand"],
        "last4": card["last4"],
        "exp_month": card["exp_month"],
        "exp_year": card["exp_year"],
    }


def card_of(token: str) -> dict[str, Any] | None:
    with Session(db.engine) as session:
        return _card(session, token)


def _card(session: Session, token: str) -> dict[str, Any] | None:
    return _card_of_row(session.get(SimToken, token))


_tokens, _charges = SimToken.__table__, SimCharge.__table__
_INSERT_TOKEN = insert(_tokens)
_CHARGE_FOR_KEY = select(
    _charges.c.id, _charges.c.status, _charges.c.decline_code, _charges.c.token
).where(_charges.c.idempotency_key == bindparam("key"))
_TOKEN = select(
    _tokens.c.brand,
    _tokens.c.last4,
    _tokens.c.exp_month,
    _tokens.c.exp_year,
    _tokens.c.behaviour,
    _tokens.c.created_at,
    _tokens.c.used_at,
).where(_tokens.c.token == bindparam("token"))
_INSERT_CHARGE = insert(_charges)
# Consumed only if nobody consumed it meanwhile (a concurrent charge, another key).
_CONSUME_TOKEN = (
    update(_tokens)
    .where(_tokens.c.token == bindparam("b_token"), _tokens.c.used_at.is_(None))
    .values(used_at=bindparam("now"))
)
# The common case in one statement: a fresh, unused token of a card that approves is consumed
# and its card returned; anything else takes the general path below.
_CONSUME_APPROVING = _CONSUME_TOKEN.where(
    _tokens.c.behaviour == "approve", _tokens.c.created_at >= bindparam("fresh_since")
).returning(_tokens.c.brand, _tokens.c.last4, _tokens.c.exp_month, _tokens.c.exp_year)
# The token is consumed and the charge inserted in one statement, outside any
# transaction (autocommit): one round trip; a key charged before fails it whole.
_CONSUMED = _CONSUME_APPROVING.cte("consumed")
_CHARGED = (
    insert(_charges)
    .from_select(
        [
            "id",
            "idempotency_key",
            "token",
            "amount_cents",
            "currency",
            "status",
            "refunded_cents",
            "created_at",
        ],
        select(
            bindparam("b_id", type_=String),
            bindparam("b_key", type_=String),
            bindparam("b_token", type_=String),
            bindparam("b_amount", type_=Integer),
            bindparam("b_currency", type_=String),
            literal("succeeded", String),
            literal(0, Integer),
            bindparam("now", type_=DateTime),
        ).select_from(_CONSUMED),
    )
    .returning(_charges.c.id)
    .cte("charged")
)
_CHARGE_APPROVING_AT_ONCE = select(
    _CONSUMED.c.brand, _CONSUMED.c.last4, _CONSUMED.c.exp_month, _CONSUMED.c.exp_year
).select_from(_CONSUMED.join(_CHARGED, literal(True)))
_OUTCOMES = {
    "approve": ("succeeded", None),
    "approve_after_delay": ("succeeded", None),
    "processing_error": ("error", "processing_error"),
    "invalid_token": ("declined", "invalid_token"),
}


def _card_of_row(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "brand": row.brand,
        "last4": row.last4,
        "exp_month": row.exp_month,
        "exp_year": row.exp_year,
    }


def charge(token: str, amount_cents: int, currency: str, idempotency_key: str) -> ChargeOutcome:
    """Charge a token once per idempotency key: a retry returns the first outcome."""
    now = _now()
    charge_id = "ch_" + secrets.token_urlsafe(18)
    with db.engine.connect() as conn:
        card = _charge_approving(
            conn,
            {
                "b_id": charge_id,
                "b_key": idempotency_key,
                "b_token": token,
                "b_amount": amount_cents,
                "b_currency": currency,
                "now": now,
                "fresh_since": now - TOKEN_LIFETIME,
            },
        )
    if card is not None:
        return ChargeOutcome(charge_id, "succeeded", None, _card_of_row(card))
    return _charge_in_general(token, amount_cents, currency, idempotency_key)


def _charge_approving(conn: Connection, charge: dict[str, Any]) -> Row | None:
    """The common case: a fresh, unused token of a card that approves, and a key not charged
    before. Its token is consumed and the charge recorded; the card is returned. None, with
    nothing changed, in every other case (the general path answers it)."""
    conn.execution_options(isolation_level="AUTOCOMMIT")
    try:
        return conn.execute(_CHARGE_APPROVING_AT_ONCE, charge).first()
    except IntegrityError:  # this key was charged before
        return None


def _charge_in_general(
    token: str, amount_cents: int, currency: str, idempotency_key: str
) -> ChargeOutcome:
    """Every case: a retried key, a used, expired or unknown token, a card that declines or
    approves slowly."""
    with db.engine.connect() as conn:
        by_key = {"key": idempotency_key}
        existing = conn.execute(_CHARGE_FOR_KEY, by_key).first()
        if existing is not None:
            card = conn.execute(_TOKEN, {"token": existing.token}).first()
            return ChargeOutcome(
                existing.id, existing.status, existing.decline_code, _card_of_row(card)
            )
        card = conn.execute(_TOKEN, {"token": token}).first()
        card_details = _card_of_row(card)
        behaviour = card.behaviour if card else "invalid_token"
        if card is not None and card.used_at is not None:
            behaviour = "token_already_used"
        elif card is not None and _now() - card.created_at > TOKEN_LIFETIME:
            behaviour = "token_expired"
        if behaviour == "approve_after_delay":
            conn.commit()  # no transaction stays open while the network call is simulated
            time.sleep(SLOW_APPROVAL_SECONDS)
        status, code = _OUTCOMES.get(behaviour, ("declined", behaviour))
        outcome = ChargeOutcome("ch_" + secrets.token_urlsafe(18), status, code, card_details)
        try:
            conn.execute(
                _INSERT_CHARGE,
                {
                    "id": outcome.charge_id,
                    "idempotency_key": idempotency_key,
                    "token": token,
                    "amount_cents": amount_cents,
                    "currency": currency,
                    "status": status,
                    "decline_code": code,
                    "refunded_cents": 0,
                    "created_at": _now(),
                },
            )
            consumed = status != "succeeded" or bool(
                conn.execute(_CONSUME_TOKEN, {"b_token": token, "now": _now()}).rowcount
            )
            if not consumed:
                conn.rollback()
            else:
                conn.commit()
        except IntegrityError:
            # A concurrent retry with the same key won the race: its outcome is the outcome.
            conn.rollback()
            first = conn.execute(_CHARGE_FOR_KEY, by_key).first()
            return ChargeOutcome(first.id, first.status, first.decline_code, card_details)
    if not consumed:  # another charge took the token meanwhile: answer as that one does
        return charge(token, amount_cents, currency, idempotency_key)
    return outcome


def refund(charge_id: str, amount_cents: int, key: str | None = None) -> bool:
    """Refund (part of) a succeeded charge; False if there is nothing left to refund. With a
    key, once per key: asking again answers as the first time did and refunds nothing more."""
    with Session(db.engine) as session:
        row = session.get(SimCharge, charge_id, with_for_update=True)  # one refund at a time
        if row is None or row.status != "succeeded":
            return False
        earlier = _earlier_answer(session, key, charge_id, amount_cents)
        if earlier is not None:
            return earlier
        if _disputed(session, charge_id):
            return False
        if key is None and row.refunded_cents >= row.amount_cents:
            return True  # already refunded in full: a retried refund changes nothing
        if row.refunded_cents + amount_cents > row.amount_cents:
            return False
        row.refunded_cents += amount_cents
        session.add(
            SimRefund(
                id="re_" + secrets.token_urlsafe(18),
                charge_id=charge_id,
                amount_cents=amount_cents,
                idempotency_key=key,
                created_at=_now(),
            )
        )
        try:
            session.commit()
        except IntegrityError:  # a concurrent call with the same key refunded first
            session.rollback()
            return bool(_earlier_answer(session, key, charge_id, amount_cents))
        return True


def _earlier_answer(
    session: Session, key: str | None, charge_id: str, amount_cents: int
) -> bool | None:
    """How a refund made earlier under this key answers a retry (None: there was none): yes, if
    the retry asks the same."""
    done = (
        session.scalar(select(SimRefund).where(SimRefund.idempotency_key == key)) if key else None
    )
    if done is None:
        return None
    return (done.charge_id, done.amount_cents) == (charge_id, amount_cents)


def _disputed(session: Session, charge_id: str) -> bool:
    found = select(SimChargeback.id).where(SimChargeback.charge_id == charge_id)
    return session.scalar(found) is not None


def chargeback(charge_id: str, reason: str) -> dict[str, Any] | None:
    """Simulate a dispute the merchant lost: the card network takes back what was not refunded.
    None when there is nothing to take (no such succeeded charge, already disputed, or refunded
    in full)."""
    with Session(db.engine) as session:
        row = session.get(SimCharge, charge_id, with_for_update=True)
        if row is None or row.status != "succeeded" or _disputed(session, charge_id):
            return None
        amount = row.amount_cents - row.refunded_cents
        if amount <= 0:
            return None
        dispute = SimChargeback(
            id="dp_" + secrets.token_urlsafe(18),
            charge_id=charge_id,
            amount_cents=amount,
            reason=reason[:60],
            created_at=_now(),
        )
        session.add(dispute)
        session.commit()
        return {"id": dispute.id, "charge_id": charge_id, "amount_cents": amount, "reason": reason}


def acquirer_fee(amount_cents: int, percent: Decimal, fixed_cents: int) -> int:
    """The acquirer's fee on one captured charge: ``percent`` of the amount, rounded half up to
    the cent (Decimal arithmetic, never float), plus ``fixed_cents``. Refunds and chargebacks
    carry no fee and give none back."""
    share = (Decimal(amount_cents) * percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(share) + fixed_cents


def settlement_report(day: dt.date) -> dict[str, Any]:
    """The report of one UTC day, as a provider publishes it: every charge captured, every
    refund and every chargeback of the day, each with the acquirer's fee and the net it pays
    (negative for money going back), and the totals per currency."""
    percent = Decimal(current_app.config["SIM_ACQUIRER_FEE_PERCENT"])
    fixed = int(current_app.config["SIM_ACQUIRER_FEE_FIXED_CENTS"])
    start = dt.datetime.combine(day, dt.time.min)
    end = start + dt.timedelta(days=1)
    with Session(db.engine) as session:
        charges = session.scalars(
            select(SimCharge)
            .where(
                SimCharge.status == "succeeded",
                SimCharge.created_at >= start,
                SimCharge.created_at < end,
            )
            .order_by(SimCharge.created_at, SimCharge.id)
        ).all()
        lines = [
            _line(c.id, "charge", c.id, c.amount_cents, c.currency, c.created_at,
                  acquirer_fee(c.amount_cents, percent, fixed))
            for c in charges
        ]  # fmt: skip
        for model, kind in ((SimRefund, "refund"), (SimChargeback, "chargeback")):
            rows = session.execute(
                select(model, SimCharge.currency)
                .join(SimCharge, SimCharge.id == model.charge_id)
                .where(model.created_at >= start, model.created_at < end)
                .order_by(model.created_at, model.id)
            ).all()
            lines += [
                _line(row.id, kind, row.charge_id, row.amount_cents, currency, row.created_at, 0,
                      getattr(row, "reason", None))
                for row, currency in rows
            ]  # fmt: skip
    totals: dict[str, dict[str, int]] = {}
    for line in lines:
        total = totals.setdefault(
            line["currency"],
            {"charges_cents": 0, "refunds_cents": 0, "chargebacks_cents": 0,
             "fees_cents": 0, "net_cents": 0},
        )  # fmt: skip
        total[f"{line['type']}s_cents"] += line["amount_cents"]
        total["fees_cents"] += line["fee_cents"]
        total["net_cents"] += line["net_cents"]
    return {
        "date": day.isoformat(),
        "fee_terms": {"percent": str(percent), "fixed_cents": fixed},
        "lines": lines,
        "totals": totals,
    }


def _line(
    line_id: str,
    kind: str,
    charge_id: str,
    amount: int,
    currency: str,
    at: dt.datetime,
    fee: int,
    reason: str | None = None,
) -> dict[str, Any]:
    money_in = amount if kind == "charge" else -amount
    return {
        "id": line_id,
        "type": kind,
        "charge_id": charge_id,
        "amount_cents": amount,
        "currency": currency,
        "fee_cents": fee,
        "net_cents": money_in - fee,
        "created_at": at.isoformat(),
        "reason": reason,
    }
