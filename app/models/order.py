"""Purchase aggregates: a Hold claims spots briefly; an Order holds Tickets paid by Payments."""

from __future__ import annotations

import datetime as dt
import enum

from flask_appbuilder import Model
from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.models.base import enum_check, utcnow
from app.models.codes import TicketClaim
from app.models.customer import Customer
from app.models.errors import Conflict
from app.models.event import Event, EventSection, EventSpot, format_money, owned_event_ids


class HoldStatus(enum.StrEnum):
    ACTIVE = "active"
    CONVERTED = "converted"
    RELEASED = "released"
    EXPIRED = "expired"


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class TicketStatus(enum.StrEnum):
    PENDING = "pending"  # priced at checkout, not yet paid
    VALID = "valid"  # paid and issued: its code admits one entry
    REVOKED = "revoked"  # refunded or cancelled after issue
    VOID = "void"  # never issued (the payment failed for good or the hold was lost)


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    CAPTURED = "captured"
    DECLINED = "declined"
    FAILED = "failed"
    REFUNDED = "refunded"
    CHARGED_BACK = "charged_back"  # the cardholder disputed it and the acquirer took it back


class Hold(Model):
    __tablename__ = "hold"
    __table_args__ = (
        enum_check("status", HoldStatus, "ck_hold_status"),
        CheckConstraint("expires_at > created_at", name="ck_hold_expiry"),
        Index("ix_hold_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False, index=True
    )
    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event.id", ondelete="CASCADE"), nullable=False, index=True
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=HoldStatus.ACTIVE.value)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)

    customer: Mapped[Customer] = relationship()
    event: Mapped[Event] = relationship()
    spots: Mapped[list[EventSpot]] = relationship(
        primaryjoin="Hold.id == EventSpot.hold_id",
        foreign_keys="EventSpot.hold_id",
        order_by="EventSpot.id",
        viewonly=True,
    )

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.event_id.in_(owned_event_ids(partner_id))

    def is_live(self, now: dt.datetime) -> bool:
        return self.status == HoldStatus.ACTIVE and self.expires_at > now

    def seconds_left(self, now: dt.datetime) -> int:
        return max(0, int((self.expires_at - now).total_seconds())) if self.is_live(now) else 0


class Order(Model):
    __tablename__ = "order"
    __table_args__ = (
        enum_check("status", OrderStatus, "ck_order_status"),
        CheckConstraint("total_cents >= 0", name="ck_order_total"),
        Index("ix_order_customer_created", "customer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("customer.id", ondelete="RESTRICT"), nullable=False
    )
    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    hold_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("hold.id", ondelete="SET NULL"), unique=True
    )
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=OrderStatus.PENDING.value
    )
    total_cents: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    paid_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    cancel_reason: Mapped[str | None] = mapped_column(String(200))

    customer: Mapped[Customer] = relationship()
    event: Mapped[Event] = relationship()
    tickets: Mapped[list[Ticket]] = relationship(back_populates="order", order_by="Ticket.id")
    payments: Mapped[list[Payment]] = relationship(back_populates="order", order_by="Payment.id")

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.event_id.in_(owned_event_ids(partner_id))

    @property
    def total(self) -> str:
        return format_money(self.total_cents, self.currency)

    @property
    def ticket_summary(self) -> str:
        return ", ".join(f"{t.seat_label} ({t.status})" for t in self.tickets) or "-"

    @property
    def payment_summary(self) -> str:
        return (
            ", ".join(
                f"{format_money(p.amount_cents, p.currency)} {p.status}"
                f" (fee {format_money(p.fee_cents, p.currency)})"
                for p in self.payments
            )
            or "-"
        )

    @property
    def live_tickets(self) -> list[Ticket]:
        return [t for t in self.tickets if t.status == TicketStatus.VALID]

    def mark_paid(self, now: dt.datetime) -> None:
        """Issue every ticket: the order is paid and has exactly its tickets."""
        if self.status != OrderStatus.PENDING:
            raise Conflict(f"Order {self.id} is {self.status}, not pending.")
        for ticket in self.tickets:
            ticket.issue(self.event, now)
        self.status = OrderStatus.PAID.value
        self.paid_at = now

    def refund(self, now: dt.datetime, *, event_cancelled: bool) -> None:
        """Revoke every ticket; their spots return to sale unless the event is cancelled."""
        if self.status != OrderStatus.PAID:
            raise Conflict(f"Order {self.id} is {self.status}: only a paid order is refunded.")
        for ticket in self.live_tickets:
            ticket.revoke(now, resell=not event_cancelled)
        self.status = OrderStatus.REFUNDED.value

    def cancel(self, reason: str) -> None:
        if self.status != OrderStatus.PENDING:
            raise Conflict(f"Order {self.id} is {self.status}, not pending.")
        for ticket in self.tickets:
            ticket.status = TicketStatus.VOID.value
        self.status = OrderStatus.CANCELLED.value
        self.cancel_reason = reason


class Ticket(Model):
    __tablename__ = "ticket"
    __table_args__ = (
        enum_check("status", TicketStatus, "ck_ticket_status"),
        CheckConstraint("price_cents >= 0", name="ck_ticket_price"),
        # The last line of defence of "a spot is sold at most once".
        Index(
            "uq_ticket_live_spot",
            "spot_id",
            unique=True,
            sqlite_where=text("status = 'valid'"),
            postgresql_where=text("status = 'valid'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("order.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    section_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event_section.id", ondelete="RESTRICT"), nullable=False
    )
    spot_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event_spot.id", ondelete="RESTRICT"), nullable=False
    )
    # The price paid, kept when the section's price changes later.
    price_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=TicketStatus.PENDING.value
    )
    holder_name: Mapped[str | None] = mapped_column(String(150))
    code: Mapped[str | None] = mapped_column(Text, unique=True)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    order: Mapped[Order] = relationship(back_populates="tickets")
    event: Mapped[Event] = relationship()
    section: Mapped[EventSection] = relationship()
    spot: Mapped[EventSpot] = relationship()

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.event_id.in_(owned_event_ids(partner_id))

    @property
    def seat_label(self) -> str:
        return f"{self.section.name} {self.spot.label}"

    def revoke(self, now: dt.datetime, *, resell: bool) -> None:
        """The ticket no longer admits anyone (the check-in answers ``revoked``)."""
        if self.status != TicketStatus.VALID:
            raise Conflict(f"Ticket {self.id} is {self.status}, not valid.")
        self.status = TicketStatus.REVOKED.value
        self.revoked_at = now
        self.spot.unsell(resell=resell)

    def issue(self, event: Event, now: dt.datetime) -> None:
        """Sell the spot to this ticket and sign its code with the event's key."""
        if self.status != TicketStatus.PENDING:
            raise Conflict(f"Ticket {self.id} is {self.status}, not pending.")
        self.spot.sell(self.order.hold_id)
        self.status = TicketStatus.VALID.value
        self.issued_at = now
        self.code = event.sign(TicketClaim(event.id, self.id, self.seat_label))


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
    refunded_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    charged_back_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    order: Mapped[Order] = relationship(back_populates="payments")

    def capture(self, gateway_ref: str, now: dt.datetime) -> None:
        if self.status != PaymentStatus.PENDING:
            raise Conflict(f"Payment {self.id} is {self.status}, not pending.")
        self.status = PaymentStatus.CAPTURED.value
        self.gateway_ref = gateway_ref
        self.captured_at = now

    def decline(self, reason: str, *, failed: bool = False) -> None:
        if self.status != PaymentStatus.PENDING:
            raise Conflict(f"Payment {self.id} is {self.status}, not pending.")
        self.status = (PaymentStatus.FAILED if failed else PaymentStatus.DECLINED).value
        self.failure_reason = reason

    def mark_refunded(self, now: dt.datetime) -> None:
        if self.status != PaymentStatus.CAPTURED:
            raise Conflict(f"Payment {self.id} is {self.status}, not captured.")
        self.status = PaymentStatus.REFUNDED.value
        self.refunded_at = now

    def mark_charged_back(self, now: dt.datetime) -> None:
        if self.status != PaymentStatus.CAPTURED:
            raise Conflict(f"Payment {self.id} is {self.status}, not captured.")
        self.status = PaymentStatus.CHARGED_BACK.value
        self.charged_back_at = now

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.order.has(Order.partner_scope(partner_id))
