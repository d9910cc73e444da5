"""A spot: one unit of an event's capacity, a numbered seat or a place in general admission
(part of the Event aggregate: an event owns its sections, which own their spots)."""

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
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.models.base import (
    MAX_INT,
    Transition,
    changed_attributes,
    enum_check,
    literal_in,
    sql_literals,
)
from app.models.errors import Conflict, DomainError

if TYPE_CHECKING:
    from app.models.event import Event
    from app.models.promo import PromoCode
    from app.models.section import EventSection
    from app.models.ticket_type import TicketType


class SpotStatus(enum.StrEnum):
    AVAILABLE = "available"
    HELD = "held"
    SOLD = "sold"
    BLOCKED = "blocked"


# Spots that may be free (a hold's time may be over): what best-available reads, through
# ix_event_spot_open_position (EventSpot.open_clause).
OPEN_STATUSES = (SpotStatus.AVAILABLE.value, SpotStatus.HELD.value)

# What a hold writes on its spots, and a sale or a release clears.
_HELD_QUOTE = (
    "hold_id",
    "held_until",
    "held_price_cents",
    "held_ticket_type_id",
    "held_request_key",
    "held_promo_code_id",
    "held_discount_cents",
)


class EventSpot(Model):
    """One unit of capacity: a numbered seat, or an anonymous general-admission place."""

    __tablename__ = "event_spot"
    __table_args__ = (
        UniqueConstraint("section_id", "label", name="uq_event_spot_label"),
        ForeignKeyConstraint(
            ["section_id", "event_id"],
            ["event_section.id", "event_section.event_id"],
            name="fk_event_spot_section_event",
            ondelete="CASCADE",
        ),
        enum_check("status", SpotStatus, "ck_event_spot_status"),
        CheckConstraint(
            "(status = 'held') = (hold_id IS NOT NULL)", name="ck_event_spot_held_has_hold"
        ),
        CheckConstraint(
            "(status = 'held') = (held_price_cents IS NOT NULL) AND held_price_cents >= 0",
            name="ck_event_spot_held_price",
        ),
        CheckConstraint("held_discount_cents >= 0", name="ck_event_spot_held_discount"),
        Index("ix_event_spot_event_status", "event_id", "status"),
        Index("ix_event_spot_section_position", "section_id", "position"),
        # Best-available reads a section's spots that may be free in seat order: without sold
        # and blocked ones in the way, however far the on-sale has gone.
        Index(
            "ix_event_spot_open_position",
            "section_id",
            "position",
            postgresql_where=text(f"status IN ({sql_literals(OPEN_STATUSES)})"),
        ),
        # A hold request asked again under its Idempotency-Key finds the spots it took: only
        # held spots keep a key (a sale or a release clears it), so the index stays small.
        Index(
            "ix_event_spot_held_request_key",
            "held_request_key",
            postgresql_where=text("held_request_key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    section_id: Mapped[int] = mapped_column(Integer, nullable=False)
    # Denormalised from the section (kept equal by the composite foreign key) so that
    # availability and locking work per event without a join.
    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event.id", ondelete="CASCADE"), nullable=False
    )
    label: Mapped[str] = mapped_column(String(40), nullable=False)
    row_label: Mapped[str | None] = mapped_column(String(20))
    seat_number: Mapped[int | None] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=SpotStatus.AVAILABLE.value
    )
    hold_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("hold.id", ondelete="SET NULL"), index=True
    )
    held_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # The price the hold quoted for this spot (its section's price when it was held): the
    # checkout charges it, whatever the section's price became meanwhile.
    held_price_cents: Mapped[int | None] = mapped_column(Integer)
    # The ticket type the hold quoted for this spot (None: the section's full price).
    held_ticket_type_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ticket_type.id", ondelete="SET NULL"), index=True
    )
    # The client's Idempotency-Key of the hold request that took this spot, if it sent one: the
    # same request asked again answers the cart it made instead of adding to it again.
    held_request_key: Mapped[str | None] = mapped_column(String(100))

    # The promo code the hold quoted this spot with, and the discount it gave: the price before
    # it was held_price_cents + held_discount_cents (0 without a code).
    held_promo_code_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("promo_code.id", ondelete="SET NULL"), index=True
    )
    held_discount_cents: Mapped[int | None] = mapped_column(Integer)

    section: Mapped[EventSection] = relationship(back_populates="spots", overlaps="event")
    event: Mapped[Event] = relationship(overlaps="section,spots")
    held_ticket_type: Mapped[TicketType | None] = relationship()
    held_promo_code: Mapped[PromoCode | None] = relationship()

    # The purchase path's changes (a held spot is free again once its hold's time is over);
    # a refunded spot goes back on sale, or is withdrawn when it must not be sold again.
    HOLD = Transition(
        (SpotStatus.AVAILABLE, SpotStatus.HELD),
        SpotStatus.HELD,
        sets=_HELD_QUOTE,
    )
    SELL = Transition((SpotStatus.HELD,), SpotStatus.SOLD, clears=_HELD_QUOTE)
    RELEASE = Transition((SpotStatus.HELD,), SpotStatus.AVAILABLE, clears=_HELD_QUOTE)
    # A courtesy ticket given by the partner: a free spot (or one of an expired hold) sold at
    # once, without a hold.
    GIVE = Transition((SpotStatus.AVAILABLE, SpotStatus.HELD), SpotStatus.SOLD, clears=_HELD_QUOTE)
    RESELL = Transition((SpotStatus.SOLD,), SpotStatus.AVAILABLE)
    WITHDRAW = Transition((SpotStatus.SOLD,), SpotStatus.BLOCKED)

    def __repr__(self) -> str:
        return self.label

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        from app.models.event import owned_event_ids  # the event's module imports this one

        return cls.event_id.in_(owned_event_ids(partner_id))

    @property
    def is_sold(self) -> bool:
        return self.status == SpotStatus.SOLD

    def release(self) -> None:
        EventSpot.RELEASE.apply(self, f"Spot {self.label}")

    def unsell(self, *, resell: bool) -> None:
        """A refunded spot: back on sale, or blocked when it must not be sold again."""
        (EventSpot.RESELL if resell else EventSpot.WITHDRAW).apply(self, f"Spot {self.label}")

    @classmethod
    def open_clause(cls) -> ColumnElement[bool]:
        """Available or held: ix_event_spot_open_position's predicate, written with its values
        in the SQL (``literal_in``). Bound, they made the generic plan read the whole section's
        index, sold seats and all (a section's last seats cost a scan of it; a sold-out
        section, every refusal)."""
        return literal_in(cls.__table__.c.status, OPEN_STATUSES)

    @classmethod
    def free_clause(cls, now: dt.datetime) -> ColumnElement[bool]:
        """Available, or held by a hold whose time is over."""
        return (cls.status == SpotStatus.AVAILABLE) | (
            (cls.status == SpotStatus.HELD) & (cls.held_until <= now)
        )

    @staticmethod
    def is_free(status: str, held_until: dt.datetime | None, now: dt.datetime) -> bool:
        """free_clause, of a spot's values (read in SQL without loading the spot)."""
        return status == SpotStatus.AVAILABLE or (
            status == SpotStatus.HELD and held_until is not None and held_until <= now
        )

    def block(self) -> None:
        if self.status == SpotStatus.BLOCKED:
            raise Conflict(gettext("Spot %(label)s is already blocked.", label=self.label))
        if self.status != SpotStatus.AVAILABLE:
            raise Conflict(
                gettext(
                    "Spot %(label)s is %(status)s and cannot be blocked.",
                    label=self.label,
                    status=self.status,
                )
            )
        self.status = SpotStatus.BLOCKED.value

    def unblock(self) -> None:
        if self.status != SpotStatus.BLOCKED:
            raise Conflict(gettext("Spot %(label)s is not blocked.", label=self.label))
        self.status = SpotStatus.AVAILABLE.value

    def check_changes(self) -> None:
        """Rules for an edited spot: a sold spot keeps its name and place; a spot moves only to
        another section of the same event."""
        if not (self.label or "").strip():
            raise DomainError(gettext("Give the spot a label."), field="label")
        if self.seat_number is not None and not 0 < self.seat_number <= MAX_INT:
            raise DomainError(gettext("A seat number is a positive number."), field="seat_number")
        changed = changed_attributes(self)
        if self.is_sold and changed & {
            "label",
            "row_label",
            "seat_number",
            "section",
            "section_id",
        }:
            raise Conflict(
                gettext("Spot %(label)s is sold: it cannot be renamed or moved.", label=self.label),
                field="label",
            )
        if self.section is not None:
            if self.event_id is not None and self.section.event_id != self.event_id:
                raise DomainError(
                    gettext("A spot can only move to another section of the same event."),
                    field="section",
                )
            self.event_id = self.section.event_id

    def check_deletable(self) -> None:
        if self.status in (SpotStatus.SOLD, SpotStatus.HELD):
            raise Conflict(
                gettext(
                    "Spot %(label)s is %(status)s and cannot be deleted.",
                    label=self.label,
                    status=self.status,
                )
            )
