"""Settlement: what the acquirer reports it paid us for a day, line by line, and what did not
match our payments (ARCHITECTURE.md, "Money")."""

from __future__ import annotations

import datetime as dt
import enum

from flask_appbuilder import Model
from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import enum_check, utcnow
from app.models.ledger import LedgerTransaction
from app.models.money import format_money
from app.models.payment import Payment, PaymentRefund


class LineKind(enum.StrEnum):
    CHARGE = "charge"  # money captured from a card
    REFUND = "refund"  # money given back to a card
    CHARGEBACK = "chargeback"  # money the card network took back after a dispute


class MismatchKind(enum.StrEnum):
    UNKNOWN = "unknown_to_us"  # in the report, but no payment of ours has the reference
    AMOUNT_DIFFERS = "amount_differs"  # the reported amount or currency is not ours
    MISSING = "missing_from_report"  # captured or refunded by us that day, not reported
    UNEXPECTED_STATE = "unexpected_state"  # reported, but our payment is in another state


class SettlementDay(Model):
    """A day whose report was reconciled: days without any money still get one, so the periodic
    task asks for each report once."""

    __tablename__ = "settlement_day"
    __table_args__ = (UniqueConstraint("gateway", "day", name="uq_settlement_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gateway: Mapped[str] = mapped_column(String(32), nullable=False)
    day: Mapped[dt.date] = mapped_column(Date, nullable=False)
    reconciled_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


class Settlement(Model):
    """One gateway's settlement of one UTC day in one currency, with the totals of its lines:
    net = captured - refunded - charged back - fees, what reaches the platform's bank."""

    __tablename__ = "settlement"
    __table_args__ = (
        UniqueConstraint("gateway", "day", "currency", name="uq_settlement_gateway_day_currency"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gateway: Mapped[str] = mapped_column(String(32), nullable=False)
    day: Mapped[dt.date] = mapped_column(Date, nullable=False, index=True)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    captured_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    refunded_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    charged_back_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    fee_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    net_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    line_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The settlement's posting (none when nothing moved that day in this currency).
    ledger_transaction_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ledger_transaction.id", ondelete="RESTRICT"), unique=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    lines: Mapped[list[SettlementLine]] = relationship(
        back_populates="settlement", order_by="SettlementLine.id"
    )
    mismatches: Mapped[list[SettlementMismatch]] = relationship(
        back_populates="settlement", order_by="SettlementMismatch.id"
    )
    ledger_transaction: Mapped[LedgerTransaction | None] = relationship()

    def __repr__(self) -> str:
        return f"{self.gateway} {self.day.isoformat()} {self.currency}"

    @property
    def cleared_cents(self) -> int:
        """What leaves gateway clearing: the money moved before the acquirer's fee."""
        return self.captured_cents - self.refunded_cents - self.charged_back_cents

    def _money(self, cents: int) -> str:
        return format_money(cents, self.currency)

    @property
    def captured(self) -> str:
        return self._money(self.captured_cents)

    @property
    def refunded(self) -> str:
        return self._money(self.refunded_cents)

    @property
    def charged_back(self) -> str:
        return self._money(self.charged_back_cents)

    @property
    def fees(self) -> str:
        return self._money(self.fee_cents)

    @property
    def net(self) -> str:
        return self._money(self.net_cents)

    @property
    def mismatch_count(self) -> int:
        return len(self.mismatches)


class SettlementLine(Model):
    """One line of a report. ``payment_id`` is set when it matched one of our payments exactly:
    a payment whose charge line matched is *settled* (its sale may be paid out). A refund line
    also names the refund of ours it matched, so each of our refunds is matched once."""

    __tablename__ = "settlement_line"
    __table_args__ = (
        enum_check("kind", LineKind, "ck_settlement_line_kind"),
        # A payment is settled by one charge line: when two days whose reports both have the
        # charge are reconciled at once, the later run replays and flags its line instead.
        Index(
            "uq_settlement_line_charge_payment",
            "payment_id",
            unique=True,
            postgresql_where=text("kind = 'charge'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    settlement_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("settlement.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # The acquirer's id of the line: each is recorded once, whichever day's replay sees it.
    line_ref: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    charge_ref: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    payment_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("payment.id", ondelete="RESTRICT"), index=True
    )
    payment_refund_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("payment_refund.id", ondelete="RESTRICT"), unique=True
    )
    amount_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    fee_cents: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    settlement: Mapped[Settlement] = relationship(back_populates="lines")
    payment: Mapped[Payment | None] = relationship()
    payment_refund: Mapped[PaymentRefund | None] = relationship()

    @property
    def amount(self) -> str:
        return format_money(self.amount_cents, self.settlement.currency)

    @property
    def fee(self) -> str:
        return format_money(self.fee_cents, self.settlement.currency)


class SettlementMismatch(Model):
    """Something finance must look at: a report line that does not match our books, or a
    payment of ours the report does not have."""

    __tablename__ = "settlement_mismatch"
    __table_args__ = (
        enum_check("kind", MismatchKind, "ck_settlement_mismatch_kind"),
        enum_check("line_kind", LineKind, "ck_settlement_mismatch_line_kind"),
        UniqueConstraint(
            "settlement_id", "kind", "line_kind", "reference", name="uq_settlement_mismatch"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    settlement_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("settlement.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    line_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    reference: Mapped[str] = mapped_column(String(100), nullable=False)
    payment_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("payment.id", ondelete="RESTRICT"), index=True
    )
    expected_cents: Mapped[int | None] = mapped_column(BigInteger)
    reported_cents: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[str] = mapped_column(String(300), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    settlement: Mapped[Settlement] = relationship(back_populates="mismatches")
    payment: Mapped[Payment | None] = relationship()

    @property
    def expected(self) -> str:
        cents = self.expected_cents
        return "-" if cents is None else format_money(cents, self.settlement.currency)

    @property
    def reported(self) -> str:
        cents = self.reported_cents
        return "-" if cents is None else format_money(cents, self.settlement.currency)
