"""Ticket types within a section: full price, half price (meia-entrada), courtesy, or the
partner's own, each with its price and an optional cap, sharing the section's spots.

Brazilian law (Lei 12.933/2013) gives students, seniors, people with disabilities and young
people on low income half price, capped at 40 % of the tickets on sale: a half-price type's
``cap`` says how many of the section's tickets it may take (``half_price_cap`` proposes 40 %),
and the gate asks for the document that entitles the holder (``check_document``).

A section without types sells at its own price (the full price). A hold quotes each spot's type
and price; the cap is kept by counting, under a lock of the type's row, the places held by live
holds and the valid tickets of that type.
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
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates
from sqlalchemy.sql.elements import ColumnElement

from app.i18n import N_
from app.models.base import MAX_INT, enum_check
from app.models.errors import DomainError
from app.models.money import PricedInCents

if TYPE_CHECKING:
    from app.models.section import EventSection

HALF_PRICE_SHARE_PERCENT = 40  # Lei 12.933/2013, art. 1º, § 10


class TicketKind(enum.StrEnum):
    FULL = "full"  # inteira
    HALF = "half"  # meia-entrada: the holder shows a document at the gate
    COURTESY = "courtesy"  # cortesia: given by the partner, not sold in the shop
    OTHER = "other"  # the partner's own (a promotion, a package, ...)


KIND_LABELS = {
    TicketKind.FULL: N_("Full price (inteira)"),
    TicketKind.HALF: N_("Half price (meia-entrada)"),
    TicketKind.COURTESY: N_("Courtesy (cortesia)"),
    TicketKind.OTHER: N_("Other"),
}
FULL_PRICE_NAME = "Inteira"  # what a ticket without a type is called


class TicketType(PricedInCents, Model):
    __tablename__ = "ticket_type"
    __table_args__ = (
        UniqueConstraint("section_id", "name", name="uq_ticket_type_name"),
        CheckConstraint("price_cents >= 0", name="ck_ticket_type_price"),
        CheckConstraint("cap IS NULL OR cap >= 0", name="ck_ticket_type_cap"),
        enum_check("kind", TicketKind, "ck_ticket_type_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    section_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event_section.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(60), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default=TicketKind.FULL.value)
    price_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    # The most tickets of this type the section may have (valid, or held by a live hold);
    # None: no limit but the section's spots.
    cap: Mapped[int | None] = mapped_column(Integer)
    # Offered in the shop; a courtesy type is not (the partner gives those).
    public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # A presale's type: offered only to buyers with a promo code for it.
    hidden: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default="false"
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    section: Mapped[EventSection] = relationship(back_populates="ticket_types")

    def __repr__(self) -> str:
        return self.name

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        from app.models.event import owned_event_ids
        from app.models.section import EventSection

        return cls.section_id.in_(
            select(EventSection.id).where(EventSection.event_id.in_(owned_event_ids(partner_id)))
        )

    @validates("price_cents")
    def _checked_price(self, _key: str, value: int | None) -> int:
        if value is None or not 0 <= value <= MAX_INT:
            raise DomainError(gettext("Give the type's price, zero or more."), field="price_cents")
        return value

    @validates("cap")
    def _checked_cap(self, _key: str, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= MAX_INT:
            raise DomainError(gettext("The cap is a number of tickets, zero or more."), field="cap")
        return value

    @property
    def price_currency(self) -> str:
        return self.section.event.currency if self.section and self.section.event else "BRL"

    @property
    def check_document(self) -> bool:
        """Whether the gate asks the holder for the document that entitles them (half price)."""
        return self.kind == TicketKind.HALF

    def check(self) -> None:
        """The rules of a type as a partner saves it."""
        if not (self.name or "").strip():
            raise DomainError(
                gettext("Give the ticket type a name (e.g. Meia-entrada)."), field="name"
            )
        self.name = self.name.strip()
        if self.kind == TicketKind.COURTESY and self.price_cents:
            raise DomainError(gettext("A courtesy ticket is free."), field="price_cents")


def half_price_cap(spots: int) -> int:
    """The half-price tickets the law allows a section of ``spots`` on sale (40 %, rounded
    down)."""
    return spots * HALF_PRICE_SHARE_PERCENT // 100
