"""The card gateway seen by the purchase code: an interface, and the simulated acquirer's adapter.

A real provider plugs in by configuration (``PAYMENT_GATEWAY``, a dotted class path) with an
adapter implementing ``PaymentGateway``; nothing in the purchase path changes.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from importlib import import_module
from typing import Protocol

from flask import current_app

from app.models import LineKind


class ChargeStatus(enum.StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    ERROR = "error"  # the processor failed: nothing was charged, the customer may retry


@dataclass(frozen=True)
class Card:
    """What we keep of a card: the gateway's token and what it tells us of the card."""

    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    reference: str | None = None
    reason: str | None = None
    card: Card | None = None  # what the gateway tells of the card charged


@dataclass(frozen=True)
class ReportLine:
    """One line of an acquirer's settlement report. Amounts are positive; the kind says which
    way the money went."""

    kind: LineKind
    line_ref: str  # the acquirer's id of this line
    charge_ref: str  # the charge it concerns: our Payment.gateway_ref
    amount_cents: int
    currency: str
    fee_cents: int = 0
    reason: str | None = None  # a chargeback's dispute reason


@dataclass(frozen=True)
class SettlementReport:
    """What the acquirer settled for one UTC day: every charge, refund and chargeback."""

    day: dt.date
    lines: tuple[ReportLine, ...]

    @property
    def currencies(self) -> set[str]:
        return {line.currency for line in self.lines}


class PaymentGateway(Protocol):
    name: str

    def card(self, token: str) -> Card | None:
        """What the gateway knows of a token (None for an unknown token)."""

    def charge(
        self, token: str, amount_cents: int, currency: str, idempotency_key: str
    ) -> ChargeResult:
        """Charge once per idempotency key; a retry answers the first result."""

    def refund(self, reference: str, amount_cents: int, key: str | None = None) -> bool:
        """Refund (part of) a captured charge. With a key, once per key: a retry (after a crash,
        say) answers as the first call did and gives nothing more back."""

    def settlement_report(self, day: dt.date) -> SettlementReport:
        """The acquirer's settlement report of a UTC day that is over."""


class SimulatedGateway:
    """Adapter for the built-in simulated acquirer (app.sim_acquirer)."""

    name = "simulated"

    def card(self, token: str) -> Card | None:
        from app import sim_acquirer

        data = sim_acquirer.api.card_of(token)
        return Card(token=token, **data) if data else None

    def charge(
        self, token: str, amount_cents: int, currency: str, idempotency_key: str
    ) -> ChargeResult:
        from app import sim_acquirer

        outcome = sim_acquirer.charge(token, amount_cents, currency, idempotency_key)
        status = {
            "succeeded": ChargeStatus.APPROVED,
            "declined": ChargeStatus.DECLINED,
        }.get(outcome.status, ChargeStatus.ERROR)
        card = Card(token=token, **outcome.card) if outcome.card else None
        return ChargeResult(status, outcome.charge_id, outcome.decline_code, card)

    def refund(self, reference: str, amount_cents: int, key: str | None = None) -> bool:
        from app import sim_acquirer

        return sim_acquirer.refund(reference, amount_cents, key)

    def settlement_report(self, day: dt.date) -> SettlementReport:
        from app import sim_acquirer

        report = sim_acquirer.settlement_report(day)
        return SettlementReport(
            day=dt.date.fromisoformat(report["date"]),
            lines=tuple(
                ReportLine(
                    kind=LineKind(line["type"]),
                    line_ref=line["id"],
                    charge_ref=line["charge_id"],
                    amount_cents=line["amount_cents"],
                    currency=line["currency"],
                    fee_cents=line["fee_cents"],
                    reason=line["reason"],
                )
                for line in report["lines"]
            ),
        )


def gateway() -> PaymentGateway:
    """The configured gateway (one instance per app)."""
    cached = current_app.extensions.get("payment_gateway")
    if cached is None:
        cached = gateway_class(current_app.config["PAYMENT_GATEWAY"])()
        current_app.extensions["payment_gateway"] = cached
    return cached


def gateway_class(path: str) -> type:
    """The class a PAYMENT_GATEWAY setting names (``module.Class``); checked at start, so a typo
    fails the deploy instead of the first payment."""
    from app.config import ConfigError

    module_name, _, class_name = path.rpartition(".")
    try:
        found = getattr(import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"PAYMENT_GATEWAY names no class: {path!r} ({exc})") from exc
    if not isinstance(found, type):
        raise ConfigError(f"PAYMENT_GATEWAY must name a class, got {path!r}")
    return found
