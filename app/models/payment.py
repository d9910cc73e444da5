"""Payments: a card charge for an order (Payment) and money given back to its card
(PaymentRefund), part of the order aggregate (order.py). Their status changes are Transitions
(``Payment.CAPTURE`` ...) the purchase path's Core statements are built from too."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from typing import TYPE_CHECKING

from flask_appbuilder import Model
from flask_babel import gettext
from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.models.base import Transition, enum_check, listed_ids, sql_literal, utcnow
from app.models.errors import Conflict
from app.models.money import format_money

if TYPE_CHECKING:
    from app.models.order import Order, Ticket


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    CAPTURED = "captured"
    DECLINED = "declined"
    FAILED = "failed"
    REFUNDED = "refunded"
    CHARGED_BACK = "charged_back"  # the cardholder disputed it and the acquirer took it back


class RefundStatus(enum.StrEnum):
    PENDING = "pending"  # recorded before the processor is asked: not in the books yet
    DONE = "done"  # the card got the money back and the books record it


class Payment(Model):
    """A card charge. Only the gateway's token, brand, last 4 digits and expiry are kept."""

    __tablename__ = "payment"
    __table_args__ = (
        enum_check("status", PaymentStatus, "ck_payment_status"),
        CheckConstraint("amount_cents >= 0", name="ck_payment_amount"),
        CheckConstraint(
            "fee_cents >= 0 AND net_cents >= 0 AND fee_cents + net_cents = amount_cents",
            name="ck_payment_fee_split",
        ),
        CheckConstraint(
            "refunded_cents >= 0 AND refunded_cents <= amount_cents", name="ck_payment_refunded"
        ),
        # The payments a crash or a timeout left pending: the reconcile task's sweep, each
        # minute (purchase/reconcile.py), reads these few, not every payment ever made.
        Index(
            "ix_payment_pending",
            "created_at",
            postgresql_where=text(f"status = {sql_literal(PaymentStatus.PENDING.value)}"),
        ),
        # A gateway's captures by time: the settlement task's day (and its first day). Captured
        # ones only: a sale's payment enters it once, at its capture, not also when recorded.
        Index(
            "ix_payment_gateway_captured",
            "gateway",
            "captured_at",
            postgresql_where=text("captured_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("order.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=PaymentStatus.PENDING.value
    )
    amount_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    fee_cents: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    net_cents: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    gateway: Mapped[str] = mapped_column(String(32), nullable=False)
    gateway_ref: Mapped[str | None] = mapped_column(String(100), index=True)
    # The gateway's token for the card (not card data): lets an unfinished charge be completed.
    gateway_token: Mapped[str | None] = mapped_column(String(64))
    card_brand: Mapped[str | None] = mapped_column(String(20))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    card_exp_month: Mapped[int | None] = mapped_column(Integer)
    card_exp_year: Mapped[int | None] = mapped_column(Integer)
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    # Hash of what the client asked for under this idempotency key: a retry must ask the same.
    request_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    captured_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # What went back to the card so far; the payment is refunded (refunded_at) once it is all.
    refunded_cents: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    refunded_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    charged_back_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    order: Mapped[Order] = relationship(back_populates="payments")
    refunds: Mapped[list[PaymentRefund]] = relationship(
        back_populates="payment", order_by="PaymentRefund.id", cascade="all, delete-orphan"
    )

    CAPTURE = Transition(
        (PaymentStatus.PENDING,), PaymentStatus.CAPTURED, sets=("gateway_ref", "captured_at")
    )
    DECLINE = Transition((PaymentStatus.PENDING,), PaymentStatus.DECLINED, sets=("failure_reason",))
    # The processor could not charge (an error on its side): nothing was charged.
    FAIL = Transition((PaymentStatus.PENDING,), PaymentStatus.FAILED, sets=("failure_reason",))
    # Refunds (whole or in part) leave from captured; the payment is refunded once all is back.
    REFUND = Transition((PaymentStatus.CAPTURED,), PaymentStatus.REFUNDED, sets=("refunded_at",))
    CHARGE_BACK = Transition(
        (PaymentStatus.CAPTURED,), PaymentStatus.CHARGED_BACK, sets=("charged_back_at",)
    )

    def capture(self, gateway_ref: str, now: dt.datetime) -> None:
        Payment.CAPTURE.apply(self, f"Payment {self.id}", gateway_ref=gateway_ref, captured_at=now)

    @property
    def refundable_cents(self) -> int:
        """What a refund or a chargeback can still take back."""
        return self.amount_cents - self.refunded_cents

    @property
    def pending_refunds(self) -> list[PaymentRefund]:
        return [r for r in self.refunds if r.status == RefundStatus.PENDING]

    def refund_key(self, tickets: list[Ticket]) -> str:
        """A refund's idempotency key at the processor, also its ledger cause key. The whole
        payment at once keeps the key full refunds always had; some tickets are named by their
        ids (a ticket is refunded once, so the key is too), or by a digest when too long."""
        if not self.refunds and sum(t.price_cents for t in tickets) == self.amount_cents:
            return f"refund:payment:{self.id}"
        key = f"refund:payment:{self.id}:tickets:" + ",".join(
            str(i) for i in sorted(t.id for t in tickets)
        )
        if len(key) <= REFUND_KEY_LENGTH:
            return key
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        return f"refund:payment:{self.id}:tickets:sha256:{digest}"

    def start_refund(self, tickets: list[Ticket], now: dt.datetime) -> PaymentRefund:
        """Claim these tickets for a refund of their prices, recorded (pending) before the
        processor is asked; Conflict when another refund has claimed one of them."""
        Payment.REFUND.require(self.status, f"Payment {self.id}")
        claimed = [t.id for t in tickets if t.refund is not None]
        if claimed:
            raise Conflict(
                gettext(
                    "Being refunded right now: ticket %(ids)s. Try again in a moment.",
                    ids=listed_ids(claimed),
                ),
                field="tickets",
                tickets=claimed,
            )
        amount = sum(t.price_cents for t in tickets)
        if amount > self.refundable_cents - sum(r.amount_cents for r in self.pending_refunds):
            left = format_money(self.refundable_cents, self.currency)
            raise Conflict(
                gettext("Payment %(id)s has only %(left)s left to refund.", id=self.id, left=left)
            )
        refund = PaymentRefund(
            idempotency_key=self.refund_key(tickets),
            amount_cents=amount,
            status=RefundStatus.PENDING.value,
            created_at=now,
        )
        refund.tickets = list(tickets)
        self.refunds.append(refund)
        return refund

    def complete_refund(self, refund: PaymentRefund, now: dt.datetime) -> None:
        """The card got the refund's money back: record it, with the platform fee's share of it.
        The payment is refunded once nothing is left."""
        Payment.REFUND.require(self.status, f"Payment {self.id}")
        if refund.status != RefundStatus.PENDING:
            raise Conflict(
                gettext(
                    "Refund %(id)s is %(status)s, not pending.", id=refund.id, status=refund.status
                )
            )
        refund.fee_share_cents = self.fee_share(refund.amount_cents)
        refund.status = RefundStatus.DONE.value
        refund.refunded_at = now
        self.refunded_cents += refund.amount_cents
        if self.refunded_cents == self.amount_cents:
            Payment.REFUND.apply(self, f"Payment {self.id}", refunded_at=now)

    def drop_refund(self, refund: PaymentRefund) -> None:
        """The processor refused a pending refund: it never happened, its tickets are free."""
        if refund.status != RefundStatus.PENDING:
            raise Conflict(
                gettext(
                    "Refund %(id)s is %(status)s, not pending.", id=refund.id, status=refund.status
                )
            )
        refund.tickets = []
        self.refunds.remove(refund)

    def fee_share(self, amount_cents: int) -> int:
        """The platform fee's share of giving ``amount_cents`` back next: proportional to the
        gross, rounded down; what takes back all that is left gets the rest of the fee, so the
        shares add up to the fee exactly."""
        if amount_cents == self.refundable_cents:
            done = (r.fee_share_cents for r in self.refunds if r.status == RefundStatus.DONE)
            return self.fee_cents - sum(done)
        return self.fee_cents * amount_cents // self.amount_cents

    def mark_refunded(self, now: dt.datetime) -> None:
        """Everything not refunded yet went back to the card at once (the charge of an order
        that could not be fulfilled)."""
        Payment.REFUND.require(self.status, f"Payment {self.id}")
        refund = PaymentRefund(
            idempotency_key=f"refund:payment:{self.id}",
            amount_cents=self.refundable_cents,
            status=RefundStatus.PENDING.value,
            created_at=now,
        )
        self.refunds.append(refund)
        self.complete_refund(refund, now)

    def mark_charged_back(self, now: dt.datetime) -> None:
        Payment.CHARGE_BACK.apply(self, f"Payment {self.id}", charged_back_at=now)

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        from app.models.order import Order  # the order's module imports this one

        return cls.order.has(Order.partner_scope(partner_id))


REFUND_KEY_LENGTH = 120  # the ledger's cause key and the acquirer's idempotency key hold this


class PaymentRefund(Model):
    """Money given back to a payment's card: the whole payment, or some of its tickets.

    Recorded (pending) before the processor is asked, under the idempotency key it is asked
    with: a retry after a crash asks again with the same key, so the card is refunded once. Done
    once the books record it (its ledger transaction has the same key as cause). Settlement
    matches the acquirer's refund lines against these, amount by amount."""

    __tablename__ = "payment_refund"
    __table_args__ = (
        enum_check("status", RefundStatus, "ck_payment_refund_status"),
        CheckConstraint(
            "amount_cents >= 0 AND fee_share_cents >= 0", name="ck_payment_refund_amounts"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("payment.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    idempotency_key: Mapped[str] = mapped_column(
        String(REFUND_KEY_LENGTH), nullable=False, unique=True
    )
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=RefundStatus.PENDING.value
    )
    amount_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    # The platform fee's share of this refund (returned or, by platform setting, kept).
    fee_share_cents: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    refunded_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    ledger_transaction_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ledger_transaction.id", ondelete="RESTRICT"), unique=True
    )

    payment: Mapped[Payment] = relationship(back_populates="refunds")
    tickets: Mapped[list[Ticket]] = relationship(back_populates="refund", order_by="Ticket.id")
