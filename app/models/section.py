"""An event's sections: a named part of its venue (seated or general admission) at one price,
owning its spots (spot.py) and its ticket types (ticket_type.py). Part of the Event aggregate
(event.py).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from flask_appbuilder import Model
from flask_babel import gettext
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.models.base import MAX_INT, changed_attributes, enum_check
from app.models.errors import Conflict, DomainError
from app.models.event import owned_event_ids
from app.models.money import PricedInCents, format_amount
from app.models.spot import EventSpot, SpotStatus
from app.models.ticket_type import TicketType

if TYPE_CHECKING:
    from app.models.event import Event


class SectionKind(enum.StrEnum):
    SEATED = "seated"
    GENERAL = "general"


class EventSection(PricedInCents, Model):
    __tablename__ = "event_section"
    __table_args__ = (
        UniqueConstraint("event_id", "name", name="uq_event_section_name"),
        # Target of the spots' composite foreign key, which keeps spot.event_id honest.
        UniqueConstraint("id", "event_id", name="uq_event_section_id_event"),
        CheckConstraint("price_cents >= 0", name="ck_event_section_price"),
        enum_check("kind", SectionKind, "ck_event_section_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default=SectionKind.SEATED.value)
    price_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # A presale's section: not on the event page, and held only with a promo code for it.
    hidden: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default="false"
    )

    event: Mapped[Event] = relationship(back_populates="sections")
    ticket_types: Mapped[list[TicketType]] = relationship(
        back_populates="section",
        order_by="TicketType.position, TicketType.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    spots: Mapped[list[EventSpot]] = relationship(
        back_populates="section",
        order_by="EventSpot.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        overlaps="event",
    )

    def __repr__(self) -> str:
        return f"{self.event.name} / {self.name}" if self.event else self.name

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.event_id.in_(owned_event_ids(partner_id))

    @property
    def is_general_admission(self) -> bool:
        return self.kind == SectionKind.GENERAL

    def spot_counts(self) -> dict[str, int]:
        """Spots per status, one query, cached on the instance for a request's rendering."""
        cached = self.__dict__.get("_spot_counts")
        if cached is None:
            session = object_session(self)
            if session is None or self.id is None:
                return {status.value: 0 for status in SpotStatus}
            rows = session.execute(
                select(EventSpot.status, func.count())
                .where(EventSpot.section_id == self.id)
                .group_by(EventSpot.status)
            ).all()
            cached = {status.value: 0 for status in SpotStatus} | dict(rows)
            self.__dict__["_spot_counts"] = cached
        return cached

    def spots_total(self) -> int:
        return sum(self.spot_counts().values())

    @property
    def available_count(self) -> int:
        return self.spot_counts()[SpotStatus.AVAILABLE]

    @property
    def held_count(self) -> int:
        return self.spot_counts()[SpotStatus.HELD]

    @property
    def sold_count(self) -> int:
        return self.spot_counts()[SpotStatus.SOLD]

    @property
    def blocked_count(self) -> int:
        return self.spot_counts()[SpotStatus.BLOCKED]

    @property
    def price_currency(self) -> str:
        return self.event.currency if self.event else ""

    def validate(self) -> None:
        if self.position is None:
            self.position = 0
        if self.kind not in set(SectionKind):
            raise DomainError(gettext("Kind is 'seated' or 'general'."), field="kind")
        if not isinstance(self.price_cents, int) or self.price_cents < 0:
            raise DomainError(gettext("The price cannot be negative."), field="price_cents")
        if self.price_cents == 0:
            # Tickets are sold by card: a charge of nothing has no capture to post, no
            # settlement line to match, and its payment would stay pending.
            raise DomainError(
                gettext(
                    "Tickets are paid by card: the price is at least %(least)s.",
                    least=format_amount(1),
                ),
                field="price_cents",
            )
        if self.price_cents > MAX_INT or not 0 <= self.position <= MAX_INT:
            raise DomainError(gettext("The number is too large."), field="price_cents")
        partner = self.event.partner if self.event is not None else None
        if partner is not None and not partner.leaves_something(self.price_cents):
            raise DomainError(
                gettext("The platform's fee would take the whole price: set a higher price."),
                field="price_cents",
            )
        if not (self.name or "").strip():
            raise DomainError(gettext("Give the section a name."), field="name")

    def check_changes(self) -> None:
        self.validate()
        changed = changed_attributes(self)
        if changed & {"event", "event_id"} and self.spots_total():
            raise Conflict(
                gettext("A section with spots cannot move to another event."), field="event"
            )
        if "kind" in changed and self.spots_total():
            raise Conflict(gettext("A section with spots cannot change its kind."), field="kind")

    def check_deletable(self) -> None:
        if self.sold_count or self.held_count:
            raise Conflict(
                gettext(
                    "Section %(name)s has sold or held spots and cannot be deleted.", name=self.name
                )
            )
