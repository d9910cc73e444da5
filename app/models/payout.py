"""Payouts: what the platform transfers to a partner, and the statement of ledger transactions
each one covers (ARCHITECTURE.md, "Money")."""

from __future__ import annotations

import datetime as dt
import enum

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User
from flask_babel import gettext
from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.models.base import enum_check, utcnow
from app.models.errors import Conflict, DomainError
from app.models.ledger import LedgerTransaction
from app.models.money import format_money
from app.models.partner import Partner


class PayoutStatus(enum.StrEnum):
    PENDING = "pending"  # created by the payout task, waiting for finance
    APPROVED = "approved"  # finance agreed to transfer it
    PAID = "paid"  # transferred: the bank reference is recorded and the ledger posted


class Payout(Model):
    __tablename__ = "payout"
    __table_args__ = (
        enum_check("status", PayoutStatus, "ck_payout_status"),
        CheckConstraint("amount_cents > 0", name="ck_payout_amount"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("partner.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=PayoutStatus.PENDING.value
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    approved_by_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="SET NULL")
    )
    paid_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    paid_by_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="SET NULL")
    )
    bank_reference: Mapped[str | None] = mapped_column(String(100))
    # The payout's posting (partner payable -> platform bank), once paid.
    ledger_transaction_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ledger_transaction.id", ondelete="RESTRICT"), unique=True
    )

    partner: Mapped[Partner] = relationship()
    approved_by: Mapped[User | None] = relationship(User, foreign_keys=[approved_by_id])
    paid_by: Mapped[User | None] = relationship(User, foreign_keys=[paid_by_id])
    items: Mapped[list[PayoutItem]] = relationship(
        back_populates="payout", order_by="PayoutItem.ledger_transaction_id"
    )

    def __repr__(self) -> str:
        return gettext("Payout %(id)s", id=self.id)

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.partner_id == partner_id

    @property
    def amount(self) -> str:
        return format_money(self.amount_cents, self.currency)

    def approve(self, user_id: int | None, now: dt.datetime) -> None:
        if self.status != PayoutStatus.PENDING:
            raise Conflict(
                gettext(
                    "Payout %(id)s is %(status)s: only a pending payout is approved.",
                    id=self.id,
                    status=self.status,
                )
            )
        self.status = PayoutStatus.APPROVED.value
        self.approved_at = now
        self.approved_by_id = user_id

    def mark_paid(self, bank_reference: str | None, user_id: int | None, now: dt.datetime) -> None:
        reference = (bank_reference or "").strip()
        if not reference:
            raise DomainError(
                gettext("Give the bank transfer's reference."), field="bank_reference"
            )
        if self.status != PayoutStatus.APPROVED:
            raise Conflict(
                gettext(
                    "Payout %(id)s is %(status)s: only an approved payout is marked paid.",
                    id=self.id,
                    status=self.status,
                )
            )
        self.status = PayoutStatus.PAID.value
        self.bank_reference = reference[:100]
        self.paid_at = now
        self.paid_by_id = user_id


class PayoutItem(Model):
    """One ledger transaction a payout covers, with the partner's share of it (a sale adds, a
    refund or chargeback takes away). A transaction is in at most one payout: never paid twice."""

    __tablename__ = "payout_item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payout_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("payout.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    ledger_transaction_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ledger_transaction.id", ondelete="RESTRICT"), nullable=False,
        unique=True,
    )  # fmt: skip
    amount_cents: Mapped[int] = mapped_column(Integer, nullable=False)

    payout: Mapped[Payout] = relationship(back_populates="items")
    ledger_transaction: Mapped[LedgerTransaction] = relationship()

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.payout.has(Payout.partner_id == partner_id)

    @property
    def amount(self) -> str:
        return format_money(self.amount_cents, self.payout.currency)

    @property
    def kind(self) -> str:
        return self.ledger_transaction.kind

    @property
    def memo(self) -> str:
        return self.ledger_transaction.memo or self.ledger_transaction.cause_key

    @property
    def posted_at(self) -> dt.datetime:
        return self.ledger_transaction.created_at
