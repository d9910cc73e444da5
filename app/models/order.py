"""Purchase aggregates: a Hold claims spots briefly; an Order holds Tickets paid by Payments
(payment.py).

Each status change is a Transition defined once on its model (``Payment.CAPTURE``,
``Order.PAY`` ...): the methods here apply it to loaded rows, and the purchase path's Core
statements (app/services/purchase/) are built from the same definition."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from flask_appbuilder import Model
from flask_babel import gettext
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

from app.i18n import status_name
from app.models.base import Transition, enum_check, listed_ids, sql_literal, utcnow
from app.models.customer import Customer
from app.models.errors import Conflict, DomainError, NotFound
from app.models.event import Event, owned_event_ids
from app.models.money import format_money
from app.models.payment import PaymentStatus
from app.models.promo import PromoCode
from app.models.section import EventSection
from app.models.spot import EventSpot
from app.models.ticket_type import TicketType

if TYPE_CHECKING:
    from app.models.payment import Payment, PaymentRefund


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
    # Handed to another customer (services/tickets.py): a new ticket for the same spot and
    # order, with a new code, replaced it (replaced_by_id); this code admits no one.
    TRANSFERRED = "transferred"
    VOID = "void"  # never issued (the payment failed for good or the hold was lost)


class Hold(Model):
    __tablename__ = "hold"
    __table_args__ = (
        enum_check("status", HoldStatus, "ck_hold_status"),
        CheckConstraint("expires_at > created_at", name="ck_hold_expiry"),
        Index("ix_hold_status_expires_at", "status", "expires_at"),
        # A customer's cart for an event (their live hold, read on every hold request): a row
        # or two, however many holds an on-sale has live. cart._CART names its predicate's
        # value (literal_in) for prepared statements' generic plans to use it.
        Index(
            "ix_hold_live_cart",
            "customer_id",
            "event_id",
            postgresql_where=text(f"status = {sql_literal(HoldStatus.ACTIVE.value)}"),
        ),
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

    # A paid hold's spots became its tickets; the customer gave them back; its time ran out
    # (or its spots were lost to another buyer while the card was charged).
    CONVERT = Transition((HoldStatus.ACTIVE,), HoldStatus.CONVERTED)
    RELEASE = Transition((HoldStatus.ACTIVE,), HoldStatus.RELEASED)
    EXPIRE = Transition((HoldStatus.ACTIVE,), HoldStatus.EXPIRED)

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.event_id.in_(owned_event_ids(partner_id))

    def is_live(self, now: dt.datetime) -> bool:
        return hold_is_live(self.status, self.expires_at, now)

    def seconds_left(self, now: dt.datetime) -> int:
        return hold_seconds_left(self.status, self.expires_at, now)


def hold_is_live(status: str, expires_at: dt.datetime, now: dt.datetime) -> bool:
    """A hold owns its spots while active and not expired (for a Hold, or a row read in SQL)."""
    return status == HoldStatus.ACTIVE and expires_at > now


def hold_seconds_left(status: str, expires_at: dt.datetime, now: dt.datetime) -> int:
    return (
        max(0, int((expires_at - now).total_seconds()))
        if hold_is_live(status, expires_at, now)
        else 0
    )


class Order(Model):
    __tablename__ = "order"
    __table_args__ = (
        enum_check("status", OrderStatus, "ck_order_status"),
        CheckConstraint("total_cents >= 0", name="ck_order_total"),
        CheckConstraint(
            f"status <> {sql_literal(OrderStatus.CANCELLED.value)} OR cancel_reason IS NOT NULL",
            name="ck_order_cancel_reason",
        ),
        Index("ix_order_customer_created", "customer_id", "created_at"),
        # Cancelled orders, for the reconcile task's sweep of captured payments to refund (a
        # race lost after the charge). Its predicate names cancel_reason, which only a
        # cancellation writes, not status: paying an order stays a HOT update.
        Index("ix_order_cancelled", "id", postgresql_where=text("cancel_reason IS NOT NULL")),
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

    PAY = Transition((OrderStatus.PENDING,), OrderStatus.PAID, sets=("paid_at",))
    CANCEL = Transition((OrderStatus.PENDING,), OrderStatus.CANCELLED, sets=("cancel_reason",))
    REFUND = Transition((OrderStatus.PAID,), OrderStatus.REFUNDED)  # once no ticket is valid

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.event_id.in_(owned_event_ids(partner_id))

    @property
    def total(self) -> str:
        return format_money(self.total_cents, self.currency)

    @property
    def ticket_summary(self) -> str:
        """Each ticket's seat and status, and the holder of a valid one (its current holder:
        a transferred ticket's successor is a ticket of the order too)."""
        return (
            ", ".join(
                f"{t.seat_label} ({status_name(t.status)}"
                + (f", {t.holder_name}" if t.status == TicketStatus.VALID and t.holder_name else "")
                + ")"
                for t in self.tickets
            )
            or "-"
        )

    @property
    def payment_summary(self) -> str:
        return (
            ", ".join(
                gettext(
                    "%(amount)s %(status)s (fee %(fee)s, refunded %(refunded)s)",
                    amount=format_money(p.amount_cents, p.currency),
                    status=status_name(p.status),
                    fee=format_money(p.fee_cents, p.currency),
                    refunded=format_money(p.refunded_cents, p.currency),
                )
                if p.status == PaymentStatus.CAPTURED and p.refunded_cents
                else gettext(
                    "%(amount)s %(status)s (fee %(fee)s)",
                    amount=format_money(p.amount_cents, p.currency),
                    status=status_name(p.status),
                    fee=format_money(p.fee_cents, p.currency),
                )
                for p in self.payments
            )
            or "-"
        )

    @property
    def live_tickets(self) -> list[Ticket]:
        return [t for t in self.tickets if t.status == TicketStatus.VALID]

    def transferred_to(self, ticket: Ticket) -> Customer | None:
        """Whom the buyer handed this ticket of the order to (the recipient of the buyer's last
        transfer in its chain), None while the buyer holds it. Later holders are the
        recipient's business: the buyer's pages name only whom the buyer chose."""
        if ticket.owner_customer_id == self.customer_id:
            return None
        predecessor = {t.replaced_by_id: t for t in self.tickets if t.replaced_by_id is not None}
        current = ticket
        for _ in range(1000):  # a chain of transfers, never a loop; bounded all the same
            before = predecessor.get(current.id)
            if before is None:
                break
            if before.owner_customer_id == self.customer_id:
                return current.owner_customer
            current = before
        return None

    def refund(self, now: dt.datetime, *, event_cancelled: bool) -> None:
        """Revoke every ticket; their spots return to sale unless the event is cancelled."""
        self.revoke_tickets(self.live_tickets, now, event_cancelled=event_cancelled)

    def revoke_tickets(
        self,
        tickets: list[Ticket],
        now: dt.datetime,
        *,
        event_cancelled: bool,
        occupied: Collection[int] = (),
    ) -> None:
        """Revoke some valid tickets (their spots return to sale unless the event is cancelled,
        or the ticket is among ``occupied``, admitted at a gate: its holder is inside); the
        order is refunded once no valid ticket is left."""
        if not Order.REFUND.allows(self.status):
            raise Conflict(
                gettext(
                    "Order %(id)s is %(status)s: only a paid order is refunded.",
                    id=self.id,
                    status=self.status,
                )
            )
        for ticket in tickets:
            ticket.revoke(now, resell=not event_cancelled and ticket.id not in occupied)
        if not self.live_tickets:
            Order.REFUND.apply(self, f"Order {self.id}")

    def tickets_to_refund(self, ticket_ids: Iterable[int]) -> list[Ticket]:
        """This order's tickets with these ids, every one still valid: NotFound names ids that
        are not this order's, Conflict names tickets already refunded."""
        wanted = set(ticket_ids)
        if not wanted:
            raise DomainError(gettext("Choose at least one ticket to refund."), field="tickets")
        found = [t for t in self.tickets if t.id in wanted]
        missing = sorted(wanted - {t.id for t in found})
        if missing:
            raise NotFound(
                gettext("Order %(id)s has no ticket %(ids)s.", id=self.id, ids=listed_ids(missing)),
                field="tickets",
            )
        transferred = [t.id for t in found if t.status == TicketStatus.TRANSFERRED]
        if transferred:
            raise Conflict(
                gettext(
                    "Transferred: ticket %(ids)s (refund the ticket that replaced it).",
                    ids=listed_ids(transferred),
                ),
                field="tickets",
                tickets=transferred,
            )
        refunded = [t.id for t in found if t.status == TicketStatus.REVOKED]
        if refunded:
            raise Conflict(
                gettext("Already refunded: ticket %(ids)s.", ids=listed_ids(refunded)),
                field="tickets",
                tickets=refunded,
            )
        invalid = [t.id for t in found if t.status != TicketStatus.VALID]
        if invalid:
            raise Conflict(
                gettext(
                    "Not issued: ticket %(ids)s (only a paid order's tickets are refunded).",
                    ids=listed_ids(invalid),
                ),
                field="tickets",
                tickets=invalid,
            )
        return found

    def cancel(self, reason: str) -> None:
        """An unpaid order: its tickets will never be issued."""
        Order.CANCEL.apply(self, f"Order {self.id}", cancel_reason=reason)
        for ticket in self.tickets:
            Ticket.VOID.apply(ticket, f"Ticket {ticket.id}")


def seat_label(section: str, spot: str) -> str:
    """How a ticket names its place, on the order page and in its signed code."""
    return f"{section} {spot}"


def printed_label(section: str, spot: str, ticket_type: str | None) -> str:
    """What a ticket's signed code names: its seat, and its type if it has one, so that a gate
    working offline reads "Plateia A-3 · Meia-entrada" too."""
    place = seat_label(section, spot)
    return f"{place} · {ticket_type}" if ticket_type else place


class Ticket(Model):
    __tablename__ = "ticket"
    __table_args__ = (
        enum_check("status", TicketStatus, "ck_ticket_status"),
        CheckConstraint("price_cents >= 0", name="ck_ticket_price"),
        CheckConstraint("discount_cents >= 0", name="ck_ticket_discount"),
        # The last line of defence of "a spot is sold at most once".
        Index(
            "uq_ticket_live_spot",
            "spot_id",
            unique=True,
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
    # Its type (half price, courtesy, ...); None: the section's full price.
    ticket_type_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ticket_type.id", ondelete="RESTRICT"), index=True
    )
    # The promo code it was bought with and the discount it gave (price_cents is what was paid:
    # the price before the code was price_cents + discount_cents).
    promo_code_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("promo_code.id", ondelete="RESTRICT"), index=True
    )
    discount_cents: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=TicketStatus.PENDING.value
    )
    holder_name: Mapped[str | None] = mapped_column(String(150))
    code: Mapped[str | None] = mapped_column(Text, unique=True)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # The refund giving this ticket's price back: set while it is pending, so no other refund
    # claims the ticket meanwhile.
    refund_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("payment_refund.id", ondelete="RESTRICT"), index=True
    )
    # The customer it was transferred to (services/tickets.py); None: the order's buyer. The
    # order and its money stay the buyer's: a refund goes back to the order's payment.
    owner_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("customer.id", ondelete="RESTRICT"), index=True
    )
    # A transferred ticket's successor: the same order and spot, a new code.
    replaced_by_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ticket.id", ondelete="SET NULL"), unique=True
    )

    order: Mapped[Order] = relationship(back_populates="tickets")
    event: Mapped[Event] = relationship()
    section: Mapped[EventSection] = relationship()
    spot: Mapped[EventSpot] = relationship()
    ticket_type: Mapped[TicketType | None] = relationship()
    promo_code: Mapped[PromoCode | None] = relationship()
    refund: Mapped[PaymentRefund | None] = relationship(back_populates="tickets")
    owner: Mapped[Customer | None] = relationship(foreign_keys=[owner_id])
    replaced_by: Mapped[Ticket | None] = relationship(
        remote_side=[id], foreign_keys=[replaced_by_id]
    )

    ISSUE = Transition((TicketStatus.PENDING,), TicketStatus.VALID, sets=("code", "issued_at"))
    VOID = Transition((TicketStatus.PENDING,), TicketStatus.VOID)
    REVOKE = Transition((TicketStatus.VALID,), TicketStatus.REVOKED, sets=("revoked_at",))
    TRANSFER = Transition((TicketStatus.VALID,), TicketStatus.TRANSFERRED, sets=("revoked_at",))

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.event_id.in_(owned_event_ids(partner_id))

    @property
    def seat_label(self) -> str:
        return seat_label(self.section.name, self.spot.label)

    @property
    def owner_customer_id(self) -> int:
        """Who holds it: the customer it was transferred to, else the order's buyer."""
        return self.owner_id if self.owner_id is not None else self.order.customer_id

    @property
    def owner_customer(self) -> Customer:
        """The customer who holds it (owner_customer_id's row)."""
        return self.owner if self.owner is not None else self.order.customer

    @property
    def current(self) -> Ticket:
        """The ticket that stands for this one now: itself, or the last of its transfers'
        successors."""
        ticket = self
        for _ in range(1000):  # a chain of transfers, never a loop; bounded all the same
            if ticket.replaced_by is None:
                break
            ticket = ticket.replaced_by
        return ticket

    @property
    def current_holder(self) -> str | None:
        """The name of whoever holds this ticket's place now (after any transfers)."""
        return self.current.holder_name

    def revoke(self, now: dt.datetime, *, resell: bool) -> None:
        """The ticket no longer admits anyone (the check-in answers ``revoked``)."""
        Ticket.REVOKE.apply(self, f"Ticket {self.id}", revoked_at=now)
        self.spot.unsell(resell=resell)
