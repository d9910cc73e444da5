"""Event aggregate: an Event owns its sections (section.py), which own their spots (spot.py)."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from babel.numbers import format_decimal
from flask_appbuilder import Model
from flask_babel import gettext
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Row,
    String,
    Text,
    and_,
    false,
    func,
    select,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship, validates
from sqlalchemy.sql.elements import ColumnElement

from app.i18n import N_, current_locale
from app.models import local_time
from app.models.base import OutOfRange, changed_attributes, enum_check, utcnow
from app.models.codes import new_private_key, public_key_of
from app.models.errors import Conflict, DomainError
from app.models.local_time import DEFAULT_TIMEZONE
from app.models.partner import Partner, PartnerStatus
from app.models.spot import EventSpot, SpotStatus

if TYPE_CHECKING:
    from app.models.section import EventSection


class EventStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    CANCELLED = "cancelled"


CHECKIN_OPENS_BEFORE = dt.timedelta(hours=6)
MAX_REFUND_WINDOW_HOURS = 24 * 366
MAX_WAITING_ROOM_PER_MINUTE = 1_000_000
# Tickets change hands (a transfer, a new holder's name) until this many hours before the start,
# unless the partner says otherwise.
DEFAULT_TRANSFERS_UNTIL_HOURS = 2
# How long a waiting-list offer (a hold reserved for the first in line) lasts by default, and at
# most (a week: an offer longer than that keeps the spots from everyone too long).
DEFAULT_WAITLIST_OFFER_MINUTES = 60
MAX_WAITLIST_OFFER_MINUTES = 7 * 24 * 60
CHECKIN_DEFAULT_LENGTH = dt.timedelta(hours=12)
# An event's times lie in these years: its doors, refund deadline and arming are worked out
# from them hours or days away, which leaves the calendar from year 1 or 9999 (OverflowError).
EVENT_YEARS = (2000, 2999)
EVENT_TIMES = (
    "starts_at",
    "ends_at",
    "sales_start",
    "sales_end",
    "checkin_opens_at",
    "checkin_closes_at",
)


def _require_event_year(field: str, value: dt.datetime) -> None:
    """OutOfRange naming ``field`` unless ``value`` lies in EVENT_YEARS."""
    first, last = EVENT_YEARS
    if not first <= value.year <= last:
        raise OutOfRange(
            gettext(
                "%(field)s is a time in the years %(first)s to %(last)s.",
                field=field,
                first=first,
                last=last,
            ),
            field=field,
        )


def checked_image_url(value: str | None) -> str | None:
    """An event's picture: the full address of an http(s) image, or None. The public catalogue
    hands it to every browser and app as is, so a "javascript:" or "data:" address never gets
    in, whichever way it comes (the form, the REST API, a service)."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        parts = urlsplit(text)
        hostname = parts.hostname  # "http://[::1" raises
    except ValueError:
        hostname = None
    if (
        not hostname
        or parts.scheme.lower() not in ("http", "https")
        or len(text) > 500
        or not text.isprintable()
        or " " in text
    ):
        raise DomainError(gettext("Give the full http(s) address of the image."), field="image_url")
    return text


def owned_event_ids(partner_id: int):  # noqa: ANN201 - a SQLAlchemy Select
    return select(Event.id).where(Event.partner_id == partner_id).scalar_subquery()


@dataclass(frozen=True)
class SaleWindow:
    """What decides whether an event sells now: read from one row on the purchase path (which
    does not load the Event and its Partner) or from an Event; or, as SQL columns, in a query
    of events (Event.on_sale_clause). The rule itself is written once (``_open``) for both."""

    name: str
    status: str
    partner_status: str
    sales_start: dt.datetime | None
    sales_end: dt.datetime | None
    starts_at: dt.datetime

    def is_open(self, now: dt.datetime) -> bool:
        return self._open(now, all_of=lambda *held: all(held), first_given=_first_given)

    def open_clause(self, now: dt.datetime) -> ColumnElement[bool]:
        """is_open as SQL, of a window whose fields are columns."""
        return self._open(now, all_of=and_, first_given=func.coalesce)

    def _open(self, now: dt.datetime, *, all_of: Any, first_given: Any) -> Any:
        """Published, its partner may sell (approved), and ``now`` inside the sales window, which
        opens at ``sales_start`` (none: at once) and closes at ``sales_end`` (none: when the event
        starts). Only operators that Python values and SQL columns share, so that both the
        Python check and the SQL clause are this one expression."""
        return all_of(
            self.status == EventStatus.PUBLISHED,
            self.partner_status == PartnerStatus.APPROVED,
            first_given(self.sales_start, now) <= now,
            first_given(self.sales_end, self.starts_at) > now,
        )

    def require_open(self, now: dt.datetime) -> None:
        if self.status == EventStatus.CANCELLED:
            raise Conflict(gettext("%(name)s is cancelled.", name=self.name))
        if not self.is_open(now):
            raise Conflict(gettext("Tickets for %(name)s are not on sale.", name=self.name))


def _first_given(value: Any, otherwise: Any) -> Any:
    """SQL's coalesce of two Python values."""
    return otherwise if value is None else value


class Event(Model):
    __tablename__ = "event"
    __table_args__ = (
        enum_check("status", EventStatus, "ck_event_status"),
        CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="ck_event_ends_after_start"),
        CheckConstraint(
            "checkin_opens_at IS NULL OR checkin_closes_at IS NULL "
            "OR checkin_closes_at > checkin_opens_at",
            name="ck_event_checkin_window",
        ),
        CheckConstraint(
            "refund_window_hours IS NULL OR refund_window_hours >= 0",
            name="ck_event_refund_window",
        ),
        CheckConstraint(
            "sales_start IS NULL OR sales_end IS NULL OR sales_end > sales_start",
            name="ck_event_sales_window",
        ),
        CheckConstraint("length(currency) = 3", name="ck_event_currency"),
        CheckConstraint("transfers_until_hours >= 0", name="ck_event_transfers_until"),
        CheckConstraint(
            "waiting_room_per_minute IS NULL OR waiting_room_per_minute > 0",
            name="ck_event_waiting_room_rate",
        ),
        CheckConstraint(
            f"waitlist_offer_minutes BETWEEN 1 AND {MAX_WAITLIST_OFFER_MINUTES}",
            name="ck_event_waitlist_offer_minutes",
        ),
        Index("ix_event_status_starts_at", "status", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("partner.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    # The time and place customers are told of when they change (mail/notice_mails.py): their
    # old value is loaded before a change even when expired, so no change goes unseen.
    venue: Mapped[str] = mapped_column(String(200), nullable=False, active_history=True)
    city: Mapped[str] = mapped_column(String(100), nullable=False, index=True, active_history=True)
    address: Mapped[str | None] = mapped_column(String(300), active_history=True)
    category: Mapped[str | None] = mapped_column(String(50), index=True)
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, active_history=True)
    ends_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    sales_start: Mapped[dt.datetime | None] = mapped_column(DateTime)
    sales_end: Mapped[dt.datetime | None] = mapped_column(DateTime)
    image_url: Mapped[str | None] = mapped_column(String(500))
    currency: Mapped[str] = mapped_column(String(3), nullable=False, default="BRL")
    # The venue's IANA time zone: its times are entered and shown there (stored in UTC).
    timezone: Mapped[str] = mapped_column(
        String(64),
        nullable=False,
        default=DEFAULT_TIMEZONE,
        server_default=DEFAULT_TIMEZONE,
        active_history=True,
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=EventStatus.DRAFT.value)
    # Ed25519 key pair signing this event's tickets (base64url raw bytes). The private key never
    # leaves the server; gates get the public key.
    signing_key: Mapped[str] = mapped_column(String(64), nullable=False, default=new_private_key)
    public_key: Mapped[str] = mapped_column(
        String(64),
        nullable=False,
        default=lambda ctx: public_key_of(ctx.get_current_parameters()["signing_key"]),
    )
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    # Gate check-in (ARCHITECTURE.md, "The scan path"): the window defaults to CHECKIN_OPENS_BEFORE
    # before the start until the end (or CHECKIN_DEFAULT_LENGTH after the start).
    checkin_opens_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    checkin_closes_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    allow_reentry: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Customers may cancel a paid order themselves (full refund) until this many hours before the
    # start; None: only the partner or the platform refunds.
    refund_window_hours: Mapped[int | None] = mapped_column(Integer)
    # A waiting room for a high-demand on-sale (app/services/waiting_room.py): buyers are let in
    # to choose spots at this many per minute, first come first served; None: no waiting room.
    waiting_room_per_minute: Mapped[int | None] = mapped_column(Integer)
    # Named tickets and transfers (services/tickets.py): the buyer names each ticket's holder at
    # checkout (required when ``named_tickets``); the ticket's owner may change its holder's name
    # or transfer it to another customer, while ``transfers_allowed``, until
    # ``transfers_until_hours`` before the start.
    named_tickets: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    transfers_allowed: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True, server_default=true()
    )
    transfers_until_hours: Mapped[int] = mapped_column(
        Integer,
        nullable=False,
        default=DEFAULT_TRANSFERS_UNTIL_HOURS,
        server_default=str(DEFAULT_TRANSFERS_UNTIL_HOURS),
    )
    # How long the first in the waiting list has to pay the spots offered to them
    # (services/waitlist.py) before they go to the next.
    waitlist_offer_minutes: Mapped[int] = mapped_column(
        Integer,
        nullable=False,
        default=DEFAULT_WAITLIST_OFFER_MINUTES,
        server_default=str(DEFAULT_WAITLIST_OFFER_MINUTES),
    )
    armed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # A cancelled event's refund task (services/refunds.py, ``resend_lost``): when the beat's
    # sweep last sent it again (None: only the cancellation sent it, at cancelled_at), and when
    # a run of it was last seen working. Sent and not seen since: the broker lost it.
    refunds_sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    refunds_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime, nullable=False, default=utcnow, onupdate=utcnow
    )

    partner: Mapped[Partner] = relationship(back_populates="events")
    sections: Mapped[list[EventSection]] = relationship(
        back_populates="event",
        order_by="(EventSection.position, EventSection.id)",
        cascade="all, delete-orphan",
    )

    def __repr__(self) -> str:
        return self.name

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.partner_id == partner_id

    @validates("image_url")
    def _checked_image_url(self, _key: str, value: str | None) -> str | None:
        return checked_image_url(value)

    @validates("timezone")
    def _checked_timezone(self, _key: str, value: str | None) -> str:
        name = (value or "").strip() or DEFAULT_TIMEZONE
        local_time.zone(name)  # UnknownTimezone naming the field
        return name

    @property
    def zone_name(self) -> str:
        """The venue's time zone (the default one on a new event not given any)."""
        return self.timezone or DEFAULT_TIMEZONE

    def local(self, field: str) -> dt.datetime | None:
        """One of the event's times as the venue's wall clock reads it (aware)."""
        value = getattr(self, field)
        return None if value is None else local_time.to_local(value, self.zone_name)

    def set_local(self, field: str, value: dt.datetime | None) -> None:
        """Set one of the event's times from the venue's wall-clock time (naive: in the
        event's zone; aware: as it is)."""
        if value is not None:
            _require_event_year(field, value)  # before converting: 9999 would leave the calendar
            value = local_time.to_utc(value, self.zone_name, field=field)
        setattr(self, field, value)

    def local_naive(self, field: str) -> dt.datetime | None:
        """One of the event's times as a form shows it: the venue's wall clock, no offset."""
        return local_time.local_naive(getattr(self, field), self.zone_name)

    def times_from_local(self, fields: Iterable[str]) -> None:
        """These times were given as the venue's wall clock (a form, an API time without an
        offset): stored as UTC. A time the venue's clocks skip is refused, naming the field."""
        for field in fields:
            value = getattr(self, field)
            if value is not None:
                self.set_local(field, value)

    def when(self, field: str = "starts_at", locale: str | None = None) -> str:
        """One of the event's times as people read it, in the venue's zone."""
        return local_time.format_local(
            getattr(self, field), self.zone_name, locale or current_locale()
        )

    # Columns for lists and show pages: the time in the venue's zone, as people read it.
    starts_local = local_time.LocalTime("starts_at")
    ends_local = local_time.LocalTime("ends_at")
    sales_start_local = local_time.LocalTime("sales_start")
    sales_end_local = local_time.LocalTime("sales_end")
    checkin_opens_local = local_time.LocalTime("checkin_opens_at")
    checkin_closes_local = local_time.LocalTime("checkin_closes_at")
    published_local = local_time.LocalTime("published_at")
    cancelled_local = local_time.LocalTime("cancelled_at")

    @property
    def is_cancelled(self) -> bool:
        return self.status == EventStatus.CANCELLED

    def customer_cancel_deadline(self) -> dt.datetime | None:
        """Until when a customer may cancel an order for a refund (None: never)."""
        if self.refund_window_hours is None:
            return None
        return self.starts_at - dt.timedelta(hours=self.refund_window_hours)

    def check_refund_window(self) -> None:
        hours = self.refund_window_hours
        if hours is not None and not 0 <= hours <= MAX_REFUND_WINDOW_HOURS:
            raise DomainError(
                gettext(
                    "The refund window is 0 to %(max_refund_window_hours)s hours before the start.",
                    max_refund_window_hours=MAX_REFUND_WINDOW_HOURS,
                ),
                field="refund_window_hours",
            )

    def transfer_deadline(self) -> dt.datetime:
        """Until when its tickets change hands (transferred, or their holder renamed)."""
        return self.starts_at - dt.timedelta(hours=self.transfers_until_hours or 0)

    def check_transfer_rules(self) -> None:
        hours = self.transfers_until_hours
        if hours is None:
            self.transfers_until_hours = DEFAULT_TRANSFERS_UNTIL_HOURS
        elif not 0 <= hours <= MAX_REFUND_WINDOW_HOURS:
            raise DomainError(
                gettext(
                    "Transfers close 0 to %(most)s hours before the start.",
                    most=MAX_REFUND_WINDOW_HOURS,
                ),
                field="transfers_until_hours",
            )

    def check_waiting_room(self) -> None:
        rate = self.waiting_room_per_minute
        if rate is not None and not 0 < rate <= MAX_WAITING_ROOM_PER_MINUTE:
            raise DomainError(
                gettext(
                    "Let in 1 to %(most)s buyers per minute, or leave it empty for no "
                    "waiting room.",
                    most=format(MAX_WAITING_ROOM_PER_MINUTE, ","),
                ),
                field="waiting_room_per_minute",
            )

    def check_waitlist_offer(self) -> None:
        """Left blank: the default."""
        if self.waitlist_offer_minutes is None:
            self.waitlist_offer_minutes = DEFAULT_WAITLIST_OFFER_MINUTES
        minutes = self.waitlist_offer_minutes
        if not 0 < minutes <= MAX_WAITLIST_OFFER_MINUTES:
            raise DomainError(
                gettext(
                    "A waiting-list offer lasts 1 to %(most)s minutes.",
                    most=format_decimal(MAX_WAITLIST_OFFER_MINUTES, locale=current_locale()),
                ),
                field="waitlist_offer_minutes",
            )

    def check_checkin_window(self) -> None:
        if (
            self.checkin_opens_at is not None
            and self.checkin_closes_at is not None
            and self.checkin_closes_at <= self.checkin_opens_at
        ):
            raise DomainError(
                gettext("Check-in must close after it opens."), field="checkin_closes_at"
            )

    def checkin_window(self) -> tuple[dt.datetime, dt.datetime]:
        """When tickets are let in: (opens, closes)."""
        opens = self.checkin_opens_at or self.starts_at - CHECKIN_OPENS_BEFORE
        closes = self.checkin_closes_at or self.ends_at or self.starts_at + CHECKIN_DEFAULT_LENGTH
        return opens, closes

    @property
    def sale_window(self) -> SaleWindow:
        return SaleWindow(
            self.name,
            self.status,
            self.partner.status,
            self.sales_start,
            self.sales_end,
            self.starts_at,
        )

    def is_on_sale(self, now: dt.datetime) -> bool:
        return self.sale_window.is_open(now)

    @classmethod
    def on_sale_clause(cls, now: dt.datetime) -> ColumnElement[bool]:
        """is_on_sale as a condition of a query of events (the catalogue's)."""
        partner_status = select(Partner.status).where(Partner.id == cls.partner_id)
        return SaleWindow(
            cls.name,
            cls.status,
            partner_status.scalar_subquery(),
            cls.sales_start,
            cls.sales_end,
            cls.starts_at,
        ).open_clause(now)

    def sold_count(self) -> int:
        return _count_spots(self, EventSpot.event_id == self.id, SpotStatus.SOLD)

    def check_changes(self) -> None:
        self.check_times()
        if not self.currency:
            raise DomainError(gettext("Give the event's currency (e.g. BRL)."), field="currency")
        self.currency = self.currency.upper()
        if "currency" in changed_attributes(self) and (self.has_sales() or self.has_live_holds()):
            raise Conflict(
                gettext("An event with sales or seats on hold keeps its currency."),
                field="currency",
            )

    def check_times(self) -> None:
        """Also the texts a listing needs (the API took blank ones the form refused)."""
        for field, message in (
            ("name", N_("Give the event a name.")),
            ("venue", N_("Give the event its venue.")),
            ("city", N_("Give the event its city.")),
        ):
            if not (getattr(self, field) or "").strip():
                raise DomainError(gettext(message), field=field)
        for field in EVENT_TIMES:
            value = getattr(self, field)
            if value is not None:
                _require_event_year(field, value)
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise DomainError(gettext("The event must end after it starts."), field="ends_at")
        if self.sales_start and self.sales_end and self.sales_end <= self.sales_start:
            raise DomainError(gettext("Sales must end after they start."), field="sales_end")
        if self.sales_end and self.sales_end > (self.ends_at or self.starts_at):
            raise DomainError(
                gettext("Sales must end before the event is over."), field="sales_end"
            )

    def publish(self) -> None:
        self.partner.require_can_sell()
        self.check_times()
        if self.status == EventStatus.CANCELLED:
            raise Conflict(gettext("A cancelled event cannot be published again."))
        if self.status == EventStatus.PUBLISHED:
            raise Conflict(gettext("%(name)s is already published.", name=self.name))
        if not any(section.spots_total() for section in self.sections):
            raise DomainError(gettext("Add at least one section with spots before publishing."))
        self.status = EventStatus.PUBLISHED.value
        self.published_at = utcnow()

    def unpublish(self) -> None:
        if self.status != EventStatus.PUBLISHED:
            raise Conflict(gettext("%(name)s is not published.", name=self.name))
        self.status = EventStatus.DRAFT.value

    def cancel(self, reason: str) -> None:
        reason = (reason or "").strip()
        if not reason:
            raise DomainError(gettext("Say why the event is cancelled."), field="reason")
        if self.status == EventStatus.CANCELLED:
            raise Conflict(gettext("%(name)s is already cancelled.", name=self.name))
        self.status = EventStatus.CANCELLED.value
        self.cancel_reason = reason
        self.cancelled_at = utcnow()

    def has_sales(self) -> bool:
        from app.models.order import Order  # the order aggregate refers back to events

        session = object_session(self)
        return bool(
            session
            and session.scalar(select(func.count()).where(Order.event_id == self.id).limit(1))
        )

    def has_live_holds(self) -> bool:
        """Seats held now: their holds were quoted in the event's currency."""
        live = (EventSpot.event_id == self.id) & (EventSpot.held_until > utcnow())
        return _count_spots(self, live, SpotStatus.HELD) > 0

    def check_deletable(self) -> None:
        if self.has_sales() or self.sold_count():
            raise Conflict(
                gettext("%(name)s has sales: cancel it instead of deleting it.", name=self.name)
            )


def _count_spots(anchor: Model, where: ColumnElement[bool], status: SpotStatus) -> int:
    session = object_session(anchor)
    if session is None:
        return 0
    return session.scalar(select(func.count()).where(where, EventSpot.status == status)) or 0


# What decides whether an event sells (SaleWindow's fields, in order), for the Core statements of
# the purchase path that read the event without loading it: first in each of them, so that
# sale_window(row) reads them.
SALE_COLUMNS = (
    Event.__table__.c.name,
    Event.__table__.c.status,
    Partner.__table__.c.status.label("partner_status"),
    Event.__table__.c.sales_start,
    Event.__table__.c.sales_end,
    Event.__table__.c.starts_at,
)


def sale_window(row: Row) -> SaleWindow:
    """The sale window of a row selected with SALE_COLUMNS first."""
    return SaleWindow(*row[: len(SALE_COLUMNS)])
