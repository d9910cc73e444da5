"""Double-entry ledger: accounts, and immutable transactions whose entries sum to zero per
currency. Debits are positive amounts, credits negative (integer cents)."""

from __future__ import annotations

import datetime as dt
import enum
from collections import defaultdict
from collections.abc import Iterable

from flask_appbuilder import Model
from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, event
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.models.base import enum_check, utcnow
from app.models.money import format_money


class AccountKind(enum.StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    REVENUE = "revenue"
    EXPENSE = "expense"


class TransactionKind(enum.StrEnum):
    CAPTURE = "capture"
    REFUND = "refund"
    SETTLEMENT = "settlement"
    PAYOUT = "payout"
    CHARGEBACK = "chargeback"
    REVERSAL = "reversal"


class LedgerError(ValueError):
    """An unbalanced or otherwise invalid posting: a bug, never user input."""


class LedgerAccount(Model):
    __tablename__ = "ledger_account"
    __table_args__ = (enum_check("kind", AccountKind, "ck_ledger_account_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(60), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(150), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    partner_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("partner.id", ondelete="RESTRICT"), unique=True
    )

    def __repr__(self) -> str:
        return self.name


class LedgerTransaction(Model):
    """One economic event, posted once: ``cause_key`` (unique) names what caused it, so replaying
    the cause posts nothing twice."""

    __tablename__ = "ledger_transaction"
    __table_args__ = (enum_check("kind", TransactionKind, "ck_ledger_transaction_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    cause_key: Mapped[str] = mapped_column(String(120), nullable=False, unique=True)
    payment_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("payment.id", ondelete="RESTRICT"), index=True
    )
    reverses_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ledger_transaction.id", ondelete="RESTRICT"), unique=True
    )
    memo: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    entries: Mapped[list[LedgerEntry]] = relationship(
        back_populates="transaction", order_by="LedgerEntry.id"
    )

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        """A partner sees the transactions touching its own payable account."""
        return cls.entries.any(LedgerEntry.account.has(LedgerAccount.partner_id == partner_id))

    @property
    def summary(self) -> str:
        return "; ".join(
            f"{e.account.code} {format_money(e.amount_cents, e.currency)}" for e in self.entries
        )


class LedgerEntry(Model):
    __tablename__ = "ledger_entry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(
        Integer,
        ForeignKey("ledger_transaction.id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    )
    account_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ledger_account.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    # Debit positive, credit negative.
    # A day's settlement moves more than 2**31 cents (R$21 M) on a busy day: 64 bits.
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    # The ticket type a sale's or a refund's fee and partner lines are for (None: untyped, or
    # not a line of tickets): statements split by type.
    ticket_type_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ticket_type.id", ondelete="RESTRICT"), index=True
    )

    # A sale's discount line: the partner's payable debited with what a promo code took off
    # the price (statements and reports show gross, discount and net from these).
    promo_code_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("promo_code.id", ondelete="RESTRICT"), index=True
    )

    transaction: Mapped[LedgerTransaction] = relationship(back_populates="entries")
    account: Mapped[LedgerAccount] = relationship()


def check_balanced(lines: Iterable[tuple[object, int, str]]) -> None:
    """Entries must sum to zero in every currency, and none may be zero."""
    totals: dict[str, int] = defaultdict(int)
    count = 0
    for _, amount, currency in lines:
        if not isinstance(amount, int) or amount == 0:
            raise LedgerError(f"a ledger entry needs a non-zero integer amount, got {amount!r}")
        totals[currency] += amount
        count += 1
    if count < 2:
        raise LedgerError("a ledger transaction needs at least two entries")
    unbalanced = {currency: total for currency, total in totals.items() if total}
    if unbalanced:
        raise LedgerError(f"ledger transaction does not balance: {unbalanced}")


@event.listens_for(Session, "before_flush")
def _ledger_is_append_only(session: Session, _context: object, _instances: object) -> None:
    """Corrections are reversing transactions: posted rows never change or disappear."""
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, LedgerTransaction | LedgerEntry) and (
            obj in session.deleted or session.is_modified(obj, include_collections=False)
        ):
            raise LedgerError("the ledger is append-only: post a reversing transaction instead")
