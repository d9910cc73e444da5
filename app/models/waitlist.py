"""The waiting list of a sold-out event: customers who want spots when spots come back (issue
#19, point 2; services/waitlist.py says how the line moves).

A customer joins per event and, optionally, per section (and ticket type within it) for a
quantity of spots. An entry naming a capped ticket type (half price sold out by its cap) is a
*type entry*: its line is the type's, apart from the section's (``in_type_line``). While
anyone waits for a section (or for the whole event), ordinary holds in it are refused, so
spots that come back go to the line first: an *offer* is an ordinary hold placed for the first
in line, which they pay as any hold until it expires. Its end decides the
entry's: paid, ``converted``; expired or released, ``expired`` (the offer unclaimed) and the
spots go to the next in line. That last step is the database's: a trigger on ``hold`` (migration
``a7c3e9f1b2d4``) ends the offered entry of a hold that ends, on every path that ends one.
"""

from __future__ import annotations

import datetime as dt
import enum
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
    and_,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.i18n import N_
from app.models.base import enum_check, literal_in, literal_is, sql_literal, sql_literals, utcnow

if TYPE_CHECKING:
    from app.models.customer import Customer
    from app.models.event import Event
    from app.models.order import Hold
    from app.models.section import EventSection
    from app.models.ticket_type import TicketType


class WaitlistStatus(enum.StrEnum):
    WAITING = "waiting"  # in line
    OFFERED = "offered"  # a hold is reserved for them until offer_expires_at
    CONVERTED = "converted"  # they paid the offered hold
    EXPIRED = "expired"  # the offer went unclaimed (its hold expired or was released)
    LEFT = "left"  # they left the list


STATUS_LABELS = {
    WaitlistStatus.WAITING: N_("Waiting"),
    WaitlistStatus.OFFERED: N_("Offered"),
    WaitlistStatus.CONVERTED: N_("Converted"),
    WaitlistStatus.EXPIRED: N_("Expired"),
    WaitlistStatus.LEFT: N_("Left"),
}
# The statuses of an entry still in the list: one such entry per customer, event and section.
OPEN_STATUSES = (WaitlistStatus.WAITING, WaitlistStatus.OFFERED)


class WaitlistEntry(Model):
    __tablename__ = "waitlist_entry"
    __table_args__ = (
        enum_check("status", WaitlistStatus, "ck_waitlist_entry_status"),
        CheckConstraint("quantity >= 1", name="ck_waitlist_entry_quantity"),
        CheckConstraint(
            "status NOT IN ('offered', 'converted') OR hold_id IS NOT NULL",
            name="ck_waitlist_entry_offer_has_hold",
        ),
        # One entry in the list per customer, event and section (NULL: the whole event).
        Index(
            "uq_waitlist_entry_open",
            "event_id",
            "customer_id",
            "section_id",
            unique=True,
            postgresql_where=text(f"status IN ({sql_literals(OPEN_STATUSES)})"),
            postgresql_nulls_not_distinct=True,
        ),
        # Who waits where: read by every hold of an event that has a list, and the line's order.
        Index(
            "ix_waitlist_entry_waiting",
            "event_id",
            "section_id",
            "created_at",
            postgresql_where=text(f"status = {sql_literal(WaitlistStatus.WAITING.value)}"),
        ),
        Index("ix_waitlist_entry_customer", "customer_id", "event_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event.id", ondelete="CASCADE"), nullable=False
    )
    customer_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False
    )
    # None: any section of the event. A ticket type implies its section (set with it).
    section_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("event_section.id", ondelete="CASCADE")
    )
    ticket_type_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ticket_type.id", ondelete="SET NULL")
    )
    quantity: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=WaitlistStatus.WAITING.value
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    offered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    offer_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # When it was converted, expired or left.
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # The offered hold (kept after it ends: the conversion's order is the hold's).
    hold_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("hold.id", ondelete="SET NULL"), unique=True
    )

    event: Mapped[Event] = relationship()
    customer: Mapped[Customer] = relationship()
    section: Mapped[EventSection | None] = relationship()
    ticket_type: Mapped[TicketType | None] = relationship()
    hold: Mapped[Hold | None] = relationship()

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        from app.models.event import owned_event_ids

        return cls.event_id.in_(owned_event_ids(partner_id))

    @classmethod
    def in_type_line(cls) -> ColumnElement[bool]:
        """Entries of a capped ticket type's line (type entries): they keep that type, not
        their section."""
        from app.models.ticket_type import TicketType

        return cls.ticket_type_id.in_(select(TicketType.id).where(TicketType.cap.is_not(None)))

    @classmethod
    def waiting_clause(cls) -> ColumnElement[bool]:
        """Waiting: ix_waitlist_entry_waiting's predicate, its value written in the SQL
        (``literal_is``): bound, it hid the index from the generic plan PostgreSQL keeps for a
        prepared statement, and every hold read the whole table, every event's old entries."""
        return literal_is(cls.__table__.c.status, WaitlistStatus.WAITING.value)

    @classmethod
    def open_clause(cls) -> ColumnElement[bool]:
        """Still in the list: uq_waitlist_entry_open's predicate, its values in the SQL."""
        return literal_in(cls.__table__.c.status, OPEN_STATUSES)

    @classmethod
    def in_section_line(cls) -> ColumnElement[bool]:
        """Entries of a section's (or the whole event's) line: without a capped ticket type."""
        from app.models.ticket_type import TicketType

        return or_(
            cls.ticket_type_id.is_(None),
            cls.ticket_type_id.not_in(select(TicketType.id).where(TicketType.cap.is_not(None))),
        )

    @property
    def waits_for_type(self) -> bool:
        """A type entry: it waits in its capped ticket type's line."""
        return self.ticket_type is not None and self.ticket_type.cap is not None

    def status_at(self, now: dt.datetime) -> str:
        """The status as of ``now``: an offer whose deadline has passed reads expired at once,
        though the sweep that records it and offers the spots on runs up to a minute later."""
        if (
            self.status == WaitlistStatus.OFFERED
            and self.offer_expires_at is not None
            and self.offer_expires_at <= now
        ):
            return WaitlistStatus.EXPIRED.value
        return self.status

    @property
    def is_open(self) -> bool:
        """Waiting or offered, as recorded (the sweep ends an offer whose time is over)."""
        return self.status in OPEN_STATUSES

    def open_at(self, now: dt.datetime) -> bool:
        """Waiting, or offered with the offer's time still running at ``now``."""
        return self.status_at(now) in OPEN_STATUSES

    @property
    def status_label(self) -> str:
        return gettext(STATUS_LABELS[WaitlistStatus(self.status_at(utcnow()))])

    @property
    def position(self) -> int | None:
        """Where a waiting entry stands in its line (1: next); None once it is not waiting. An
        event-wide entry's line is the whole event's; a section's takes in the event-wide ones
        (they are offered any section's spots); a type entry's is its type's alone."""
        if self.status != WaitlistStatus.WAITING:
            return None
        other = WaitlistEntry
        ahead = (
            select(func.count())
            .select_from(other)
            .where(
                other.event_id == self.event_id,
                WaitlistEntry.waiting_clause(),
                or_(
                    other.created_at < self.created_at,
                    and_(other.created_at == self.created_at, other.id < self.id),
                ),
            )
        )
        if self.waits_for_type:
            ahead = ahead.where(other.ticket_type_id == self.ticket_type_id)
        else:
            ahead = ahead.where(other.in_section_line())
        if self.section_id is not None and not self.waits_for_type:
            ahead = ahead.where(
                or_(other.section_id.is_(None), other.section_id == self.section_id)
            )
        return int(object_session(self).scalar(ahead) or 0) + 1
