"""Partner (event organiser) and the platform user extended with partner membership."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User
from flask_babel import gettext
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    event,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.models.base import enum_check, utcnow
from app.models.errors import Conflict, DomainError, Forbidden
from app.models.money import amount_from_cents, cents_from_amount, format_amount

if TYPE_CHECKING:
    from app.models.event import Event


class PartnerStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    SUSPENDED = "suspended"


class Partner(Model):
    __tablename__ = "partner"
    __table_args__ = (
        enum_check("status", PartnerStatus, "ck_partner_status"),
        CheckConstraint("fee_percent >= 0 AND fee_percent <= 100", name="ck_partner_fee_percent"),
        CheckConstraint("fee_fixed_cents >= 0", name="ck_partner_fee_fixed"),
        CheckConstraint(
            "reserve_percent >= 0 AND reserve_percent <= 100", name="ck_partner_reserve_percent"
        ),
    )
    # How long each settled sale's reserve is held back from payouts (services/payouts.py).
    RESERVE_DAYS = 30

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(150), unique=True, nullable=False)
    contact_email: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=PartnerStatus.PENDING.value
    )
    # Platform fee: a percentage of the gross plus a fixed amount per ticket.
    fee_percent: Mapped[Decimal] = mapped_column(
        Numeric(5, 2), nullable=False, default=Decimal("0.00")
    )
    fee_fixed_cents: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Payout reserve for refunds and chargebacks: this percentage of the partner's settled net
    # of the last RESERVE_DAYS days is not paid out yet.
    reserve_percent: Mapped[Decimal] = mapped_column(
        Numeric(5, 2), nullable=False, default=Decimal("0.00"), server_default="0"
    )
    # The daily sales summary e-mailed to the partner's contact (opt-out).
    daily_summary: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True, server_default=true()
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    suspended_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    events: Mapped[list[Event]] = relationship(back_populates="partner")

    def __repr__(self) -> str:
        return self.name

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.id == partner_id

    @property
    def fee_fixed_amount(self) -> Decimal | None:
        """The fixed fee per ticket in currency units, for forms (storage stays in cents)."""
        return None if self.fee_fixed_cents is None else amount_from_cents(self.fee_fixed_cents)

    @fee_fixed_amount.setter
    def fee_fixed_amount(self, value: Decimal | str | None) -> None:
        self.fee_fixed_cents = cents_from_amount(
            value, field="fee_fixed_amount", noun="fee per ticket"
        )

    def validate_fees(self) -> None:
        percent = Decimal(self.fee_percent if self.fee_percent is not None else 0)
        # NaN compares with nothing (Decimal raises InvalidOperation), infinity is no percent.
        if not percent.is_finite() or not Decimal(0) <= percent <= Decimal(100):
            raise DomainError(
                gettext("The fee percentage is between 0 and 100."), field="fee_percent"
            )
        if percent != percent.quantize(Decimal("0.01")):
            raise DomainError(
                gettext("The fee percentage has at most two decimal places."), field="fee_percent"
            )
        if self.fee_fixed_cents is None or self.fee_fixed_cents < 0:
            raise DomainError(gettext("The fixed fee cannot be negative."), field="fee_fixed_cents")
        for price in self.section_prices():
            if not self.leaves_something(price):
                raise Conflict(
                    gettext(
                        "These fees would take the whole price of its %(price)s tickets: a "
                        "sale must leave the partner something.",
                        price=format_amount(price),
                    ),
                    field="fee_percent" if percent >= 100 else "fee_fixed_cents",
                )

    def set_reserve(self, percent: Decimal | None) -> None:
        """The payout reserve: a percentage, 0 (none) to 100, to the cent of a percent."""
        if percent is None:
            raise DomainError(
                gettext("Give the reserve as a percentage, 0 to 100."), field="reserve_percent"
            )
        self.reserve_percent = percent
        self.validate_reserve()

    def validate_reserve(self) -> None:
        if self.reserve_percent is None:
            self.reserve_percent = Decimal(0)  # left empty in the partner form: no reserve
        percent = Decimal(self.reserve_percent)
        if not percent.is_finite() or not Decimal(0) <= percent <= Decimal(100):
            raise DomainError(
                gettext("The reserve is a percentage between 0 and 100."), field="reserve_percent"
            )
        if percent != percent.quantize(Decimal("0.01")):
            raise DomainError(
                gettext("The reserve has at most two decimal places."), field="reserve_percent"
            )

    def reserve_cents(self, settled_net_cents: int) -> int:
        """What the reserve holds back of the partner's settled net of the last RESERVE_DAYS
        days (rounded half up to the cent; nothing when that net is not positive)."""
        if settled_net_cents <= 0:
            return 0
        held = Decimal(settled_net_cents) * Decimal(self.reserve_percent or 0) / 100
        return int(held.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def leaves_something(self, price_cents: int) -> bool:
        """Whether a ticket at this price leaves the partner a share after the platform's fee.
        A sale the fee takes whole posts nothing to the partner, whose statement, balance and
        sales report would then not show it."""
        return self.platform_fee_cents(price_cents, 1) < price_cents

    def section_prices(self) -> set[int]:
        """The prices of the sections of this partner's events that still sell."""
        from sqlalchemy import select
        from sqlalchemy.orm import object_session

        from app.models.event import Event, EventStatus
        from app.models.section import EventSection

        session = object_session(self)
        if session is None or self.id is None:
            return set()
        prices = (
            select(EventSection.price_cents)
            .join(Event)
            .where(Event.partner_id == self.id, Event.status != EventStatus.CANCELLED)
        )
        return set(session.scalars(prices.distinct()))

    def check_deletable(self) -> None:
        if self.events:
            raise Conflict(
                gettext("%(name)s has events: suspend it instead of deleting it.", name=self.name)
            )

    def require_can_sell(self) -> None:
        """Only approved partners publish events and sell tickets (SaleWindow.is_open)."""
        if self.status == PartnerStatus.SUSPENDED:
            raise Forbidden(
                gettext("Partner %(name)s is suspended: it cannot publish or sell.", name=self.name)
            )
        if self.status != PartnerStatus.APPROVED:
            raise Forbidden(
                gettext(
                    "Partner %(name)s is awaiting approval: it cannot publish or sell.",
                    name=self.name,
                )
            )

    def approve(self) -> None:
        if self.status == PartnerStatus.APPROVED:
            raise Conflict(gettext("Partner %(name)s is already approved.", name=self.name))
        self.status = PartnerStatus.APPROVED.value
        self.approved_at = utcnow()
        self.suspended_at = None

    def suspend(self) -> None:
        if self.status == PartnerStatus.SUSPENDED:
            raise Conflict(gettext("Partner %(name)s is already suspended.", name=self.name))
        self.status = PartnerStatus.SUSPENDED.value
        self.suspended_at = utcnow()

    def platform_fee_cents(self, gross_cents: int, tickets: int) -> int:
        return platform_fee_cents(self.fee_percent, self.fee_fixed_cents, gross_cents, tickets)


def platform_fee_cents(
    fee_percent: Decimal | int, fee_fixed_cents: int, gross_cents: int, tickets: int
) -> int:
    """The platform's fee on a sale: percent of gross (half up) plus the fixed part per ticket,
    never more than the gross itself."""
    percent_part = (Decimal(gross_cents) * Decimal(fee_percent) / 100).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    return min(gross_cents, int(percent_part) + fee_fixed_cents * tickets)


class PartnerUser(User):
    """FAB's user with its partner membership (at most one partner per user)."""

    __tablename__ = "ab_user"

    partner_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("partner.id", ondelete="RESTRICT"), index=True
    )
    partner: Mapped[Partner | None] = relationship(Partner, foreign_keys=[partner_id])
    # Every API token carries the epoch it was issued in; a password change, a reset or a
    # deactivation bumps it (end_sessions), and older tokens, refresh tokens included, are
    # refused. Dashboard and shop sessions end with their login_session rows.
    session_epoch: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )
    # Two-factor sign-in (app/services/two_factor.py): the TOTP secret, encrypted, and the time
    # step of the last code accepted, so that a code signs in once.
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # The language the user picked with the switcher (app/i18n.py): "pt_BR", "en" or none.
    locale: Mapped[str | None] = mapped_column(String(8))

    @property
    def has_two_factor(self) -> bool:
        return self.totp_secret is not None

    def role_names(self) -> set[str]:
        return {role.name for role in self.roles}

    def end_sessions(self) -> None:
        """End every session and API token issued so far (their epoch is now behind)."""
        self.session_epoch = (self.session_epoch or 0) + 1


@event.listens_for(PartnerUser.active, "set", active_history=True)
def _deactivation_ends_sessions(user: PartnerUser, value: bool, old: object, _: object) -> None:
    """However a user is deactivated (the dashboard, a script), its sessions and tokens end,
    and stay ended if it is activated again."""
    if old is True and not value:
        user.end_sessions()
