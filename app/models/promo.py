"""Promo codes (vouchers): a partner's codes giving a discount, or a fixed price, on its events'
tickets, or unlocking a hidden section or ticket type (a presale for fans).

A code belongs to a partner and applies to one of its events (``event_id``) or to all of them
(None), optionally to one section and/or one ticket type. It takes a percent off (whole percent,
the discount rounded half up to the cent), an amount off, or sets a fixed price; it is valid
from ``valid_from`` to ``valid_until`` (either open), and for ``max_uses`` tickets in all and
``max_uses_per_customer`` per buyer (None: no limit).

A use is one discounted ticket (pretix's vouchers count so): uses in force are the valid tickets
bought with the code and the spots held with it by live holds, counted under a lock of the
code's row when a hold takes some (app/services/purchase/promo_codes.py). A hold that expires
gives its uses back the moment it expires, a refunded ticket when it is revoked; nothing locks
the code then.

A code never makes a ticket free: courtesy tickets are for that (app/services/courtesy.py), and
a paid order of R$ 0,00 would charge no card and post no sale. A percent is 1 to 99, a fixed
price at least one cent, and a hold whose discount would leave a ticket at zero (an amount off
as large as the price) is refused.

Codes are unique per partner regardless of case: they are stored upper-case and looked up so.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import secrets
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flask_appbuilder import Model
from flask_babel import gettext
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    Select,
    String,
    UniqueConstraint,
    bindparam,
    func,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship, validates
from sqlalchemy.sql.elements import ColumnElement

from app.i18n import N_
from app.models import local_time
from app.models.base import MAX_INT, enum_check, utcnow
from app.models.errors import DomainError
from app.models.money import amount_from_cents, cents_from_amount, format_money

if TYPE_CHECKING:
    from app.models.event import Event
    from app.models.partner import Partner
    from app.models.section import EventSection
    from app.models.ticket_type import TicketType

# Letters and digits nobody confuses when reading a code aloud or copying it (no 0/O, 1/I/L).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_CHARACTERS = frozenset(CODE_ALPHABET) | frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_")
RANDOM_PART = 8  # 31**8, about 8.5e11 codes per prefix
MAX_BATCH = 5000


class PromoKind(enum.StrEnum):
    PERCENT = "percent"  # value: whole percent off, 1 to 99
    AMOUNT_OFF = "amount_off"  # value: cents off each ticket
    FIXED_PRICE = "fixed_price"  # value: each ticket's price in cents


PROMO_KIND_LABELS = {
    PromoKind.PERCENT: N_("Percent off"),
    PromoKind.AMOUNT_OFF: N_("Amount off"),
    PromoKind.FIXED_PRICE: N_("Fixed price"),
}


class PromoCodeRefused(DomainError):
    """A code that does not apply (expired, not yet valid, another event, section or type)."""

    code = "promo_code_refused"


def normalized(code: str) -> str:
    """A code as stored and looked up: trimmed, upper-case."""
    return (code or "").strip().upper()


def random_code(prefix: str) -> str:
    """``PREFIX-`` and RANDOM_PART characters of CODE_ALPHABET drawn by ``secrets``."""
    tail = "".join(secrets.choice(CODE_ALPHABET) for _ in range(RANDOM_PART))
    return f"{normalized(prefix)}-{tail}" if prefix.strip() else tail


def discounted_price(kind: str, value: int, gross_cents: int) -> int:
    """What a ticket of ``gross_cents`` costs with a code of ``kind`` and ``value``: a percent
    off with the discount rounded half up to the cent, an amount off never below zero, a fixed
    price never above the gross (a code does not raise a price)."""
    if kind == PromoKind.PERCENT:
        return gross_cents - (gross_cents * value + 50) // 100
    if kind == PromoKind.AMOUNT_OFF:
        return max(gross_cents - value, 0)
    if kind == PromoKind.FIXED_PRICE:
        return min(value, gross_cents)
    raise ValueError(f"unknown promo code kind {kind!r}")


class PromoCode(Model):
    __tablename__ = "promo_code"
    __table_args__ = (
        UniqueConstraint("partner_id", "code", name="uq_promo_code_partner_code"),
        CheckConstraint("code = upper(code)", name="ck_promo_code_upper"),
        CheckConstraint("value > 0", name="ck_promo_code_value"),
        CheckConstraint("kind <> 'percent' OR value < 100", name="ck_promo_code_percent"),
        CheckConstraint("max_uses IS NULL OR max_uses >= 0", name="ck_promo_code_max_uses"),
        CheckConstraint(
            "max_uses_per_customer IS NULL OR max_uses_per_customer >= 1",
            name="ck_promo_code_max_per_customer",
        ),
        enum_check("kind", PromoKind, "ck_promo_code_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("partner.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    # None: every event of the partner.
    event_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("event.id", ondelete="CASCADE"), index=True
    )
    section_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("event_section.id", ondelete="CASCADE"), index=True
    )
    ticket_type_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ticket_type.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(40), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default=PromoKind.PERCENT.value)
    value: Mapped[int] = mapped_column(Integer, nullable=False)
    valid_from: Mapped[dt.datetime | None] = mapped_column(DateTime)
    valid_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    max_uses: Mapped[int | None] = mapped_column(Integer)
    max_uses_per_customer: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # The prefix of the batch of single-use codes it was generated in (None: typed by hand).
    batch: Mapped[str | None] = mapped_column(String(20), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    partner: Mapped[Partner] = relationship()
    event: Mapped[Event | None] = relationship()
    section: Mapped[EventSection | None] = relationship()
    ticket_type: Mapped[TicketType | None] = relationship()

    def __repr__(self) -> str:
        return self.code

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.partner_id == partner_id

    @validates("code")
    def _upper(self, _key: str, value: str | None) -> str:
        return normalized(value or "")

    @validates("value", "max_uses", "max_uses_per_customer")
    def _in_range(self, key: str, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= MAX_INT:
            raise DomainError(gettext("Give a whole number, zero or more."), field=key)
        return value

    @property
    def currency(self) -> str:
        return self.event.currency if self.event is not None else "BRL"

    @property
    def timezone(self) -> str:
        """Its dates are its event's wall clock (Brasília's for a code of every event)."""
        return self.event.timezone if self.event is not None else local_time.DEFAULT_TIMEZONE

    def times_from_local(self) -> None:
        """``valid_from`` and ``valid_until`` as a form gave them (the venue's wall clock) to
        the UTC stored."""
        for field in ("valid_from", "valid_until"):
            value = getattr(self, field)
            if value is not None:
                setattr(self, field, local_time.to_utc(value, self.timezone, field=field))

    def local_naive(self, field: str) -> dt.datetime | None:
        return local_time.local_naive(getattr(self, field), self.timezone)

    @property
    def value_text(self) -> str:
        """The discount as people read it: "20 %", "R$ 10,00 off", "R$ 50,00"."""
        if self.kind == PromoKind.PERCENT:
            return gettext("%(percent)s %% off", percent=self.value)
        if self.kind == PromoKind.AMOUNT_OFF:
            return gettext("%(amount)s off", amount=format_money(self.value, self.currency))
        return gettext("for %(amount)s", amount=format_money(self.value, self.currency))

    @property
    def value_amount(self) -> Decimal | None:
        """The discount as a form shows it: the percent, or the amount in currency units."""
        if self.value is None:
            return None
        return (
            Decimal(self.value) if self.kind == PromoKind.PERCENT else amount_from_cents(self.value)
        )

    @value_amount.setter
    def value_amount(self, value: Decimal | None) -> None:
        # Read as the kind says once the whole form is in (``check``): fields come in any order.
        self._typed_value = value

    def _value_from_form(self) -> None:
        typed = self.__dict__.pop("_typed_value", None)
        if typed is None:
            return
        if self.kind == PromoKind.PERCENT:
            if typed != typed.to_integral_value():
                raise DomainError(gettext("A percent off is a whole number."), field="value")
            self.value = int(typed)
        else:
            self.value = cents_from_amount(typed, field="value")

    def price_for(self, gross_cents: int) -> int:
        return discounted_price(self.kind, self.value, gross_cents)

    @property
    def uses(self) -> int:
        """Its uses in force now (``uses_query``)."""
        session = object_session(self)
        if session is None or self.id is None:
            return 0
        return session.execute(uses_query(), {"promo_id": self.id, "now": utcnow()}).scalar_one()

    @property
    def uses_text(self) -> str:
        """Uses in force and the limit: "3 / 10", "3 / -" without one."""
        return f"{self.uses} / {self.max_uses if self.max_uses is not None else '-'}"

    def check(self) -> None:
        """The rules of a code as a partner saves it."""
        self._value_from_form()
        if not self.code or not set(self.code) <= CODE_CHARACTERS or len(self.code) > 40:
            raise DomainError(
                gettext("A code is 1 to 40 letters, digits, - or _ (no spaces)."), field="code"
            )
        if self.kind not in set(PromoKind):
            raise DomainError(gettext("Choose the kind of discount."), field="kind")
        if self.value is None or self.value < 1:
            raise DomainError(gettext("Give the discount, more than zero."), field="value")
        if self.kind == PromoKind.PERCENT and self.value >= 100:
            raise DomainError(
                gettext(
                    "At most 99 %% off: a code never makes a ticket free (give courtesy tickets "
                    "for that)."
                ),
                field="value",
            )
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise DomainError(gettext("Valid until comes after valid from."), field="valid_until")
        if self.max_uses_per_customer is not None and self.max_uses_per_customer < 1:
            raise DomainError(
                gettext("At least one use per customer (empty: no limit)."),
                field="max_uses_per_customer",
            )
        self._check_targets()

    def _check_targets(self) -> None:
        """The event, section and type belong to the code's partner and to each other."""
        kind, section, event = self.ticket_type, self.section, self.event
        if kind is not None:
            if section is not None and kind.section_id != section.id:
                raise DomainError(
                    gettext("The ticket type is of another section."), field="ticket_type"
                )
            section = self.section = kind.section
        if section is not None:
            if event is not None and section.event_id != event.id:
                raise DomainError(gettext("The section is of another event."), field="section")
            event = self.event = section.event
        if (
            event is not None
            and self.partner_id is not None
            and event.partner_id != self.partner_id
        ):
            raise DomainError(gettext("The event is of another partner."), field="event")


@functools.cache
def uses_query(*, by_customer: bool = False) -> Select[Any]:
    """A code's uses in force (parameters ``promo_id`` and ``now``; ``customer_id`` when
    ``by_customer``): the spots held with it by live holds and its valid tickets (a pending
    ticket's spot is still held: counted once)."""
    from app.models.order import Hold, Order, Ticket, TicketStatus
    from app.models.spot import EventSpot, SpotStatus

    spot, hold, ticket, order = (
        EventSpot.__table__,
        Hold.__table__,
        Ticket.__table__,
        Order.__table__,
    )
    held = (
        select(func.count())
        .select_from(spot)
        .where(
            spot.c.held_promo_code_id == bindparam("promo_id"),
            spot.c.status == SpotStatus.HELD.value,
            spot.c.held_until > bindparam("now"),
        )
    )
    paid = (
        select(func.count())
        .select_from(ticket)
        .where(
            ticket.c.promo_code_id == bindparam("promo_id"),
            ticket.c.status == TicketStatus.VALID.value,
        )
    )
    if by_customer:
        held = held.join_from(spot, hold, hold.c.id == spot.c.hold_id).where(
            hold.c.customer_id == bindparam("customer_id")
        )
        paid = paid.join_from(ticket, order, order.c.id == ticket.c.order_id).where(
            order.c.customer_id == bindparam("customer_id")
        )
    return select(held.scalar_subquery() + paid.scalar_subquery())


def refusal(code: Any, now: dt.datetime, event_id: int) -> PromoCodeRefused | None:
    """Why ``code`` (a PromoCode, or a row of its columns) may not be used ``now`` for
    ``event_id``, or None."""
    if not code.active:
        return PromoCodeRefused(gettext("This promo code is no longer valid."), field="promo_code")
    if code.event_id is not None and code.event_id != event_id:
        return PromoCodeRefused(
            gettext("This promo code is not valid for this event."), field="promo_code"
        )
    if code.valid_from is not None and now < code.valid_from:
        return PromoCodeRefused(gettext("This promo code is not valid yet."), field="promo_code")
    if code.valid_until is not None and now >= code.valid_until:
        return PromoCodeRefused(gettext("This promo code has expired."), field="promo_code")
    return None
