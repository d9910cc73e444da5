"""Webhooks: a partner's endpoints (where its own systems hear of its orders, entries and
payouts) and the outbox of deliveries to them.

A delivery is written in the transaction of its cause, one row per subscribed endpoint, and
keeps what it says (``payload``), not a rendered body: the sender builds the body from the row
the same way on every attempt (``app/services/webhooks/``). ``key`` names the cause and kind and
is unique per endpoint, so a cause written twice (a retried task, a reconcile run) is one
delivery. ``partner_id`` is the endpoint's, copied so the dashboard's scope is one column.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask_appbuilder import Model
from flask_babel import gettext
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.i18n import N_
from app.models.base import enum_check, sql_literals, utcnow
from app.models.errors import DomainError
from app.models.partner import Partner


class WebhookKind(enum.StrEnum):
    """What a partner's endpoint may subscribe to."""

    ORDER_PAID = "order.paid"
    ORDER_REFUNDED = "order.refunded"  # money went back: any refund, a cancellation's too
    ORDER_CANCELLED = "order.cancelled"  # by its customer, or with its event
    TICKET_TRANSFERRED = "ticket.transferred"
    TICKET_CHECKED_IN = "ticket.checked_in"  # a ticket's first admission at a gate
    PAYOUT_PAID = "payout.paid"


KIND_LABELS = {
    WebhookKind.ORDER_PAID: N_("Order paid"),
    WebhookKind.ORDER_REFUNDED: N_("Order refunded"),
    WebhookKind.ORDER_CANCELLED: N_("Order cancelled"),
    WebhookKind.TICKET_TRANSFERRED: N_("Ticket transferred"),
    WebhookKind.TICKET_CHECKED_IN: N_("Ticket checked in"),
    WebhookKind.PAYOUT_PAID: N_("Payout paid"),
}


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # due at next_attempt_at (once the endpoint's older ones are done)
    SENDING = "sending"  # claimed by a sender until claimed_until; after that, anyone's again
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # given up (attempts or age); a partner may send it again


#: What a secret starts with, so one pasted in the wrong place is recognisable.
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
#: After a rotation the old secret still signs (a second ``v1``) this long, so the partner's
#: system can switch at its own pace without refusing a delivery.
ROTATION_OVERLAP = dt.timedelta(hours=24)
URL_LENGTH = 500
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(24)


def check_url(url: str | None, *, allow_local_http: bool) -> str:
    """The endpoint's address, trimmed, or DomainError at the ``url`` field: https:// with a
    host, no credentials in it; plain http:// only to this machine (localhost, 127.0.0.1, ::1)
    and only outside production, for a developer's or a test's own server."""
    url = (url or "").strip()
    if not url:
        raise DomainError(gettext("Give the endpoint's address."), field="url")
    if len(url) > URL_LENGTH:
        raise DomainError(
            gettext("The address is longer than %(max)s characters.", max=URL_LENGTH), field="url"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise DomainError(gettext("This is not a web address."), field="url") from None
    if not host or parts.scheme not in ("https", "http") or any(c.isspace() for c in url):
        raise DomainError(gettext("Give an https:// address."), field="url")
    if not url.isascii():  # a request line and a Host header are ASCII: it could never be sent
        raise DomainError(
            gettext(
                "Write the address in ASCII: an international domain name in its xn-- form, "
                "and any other character of the path percent-encoded."
            ),
            field="url",
        )
    if parts.username is not None or parts.password is not None:
        raise DomainError(
            gettext("No user or password in the address: deliveries are signed instead."),
            field="url",
        )
    if parts.scheme == "http" and not (allow_local_http and host.lower() in LOCAL_HOSTS):
        raise DomainError(
            gettext("Give an https:// address: deliveries carry your sales data."), field="url"
        )
    return url


def is_public_address(address: str) -> bool:
    """Whether an IP address is one on the internet (not this machine, a private network, a
    link-local or reserved range): in production deliveries go to such addresses only."""
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_global
    except ValueError:
        return False


class WebhookEndpoint(Model):
    __tablename__ = "webhook_endpoint"
    __table_args__ = (
        CheckConstraint(
            "cardinality(kinds) > 0 AND kinds <@ ARRAY["
            + sql_literals(kind.value for kind in WebhookKind)
            + "]::varchar[]",
            name="ck_webhook_endpoint_kinds",
        ),
        # The writers' lookup: a partner's active endpoints (few rows, often none).
        Index(
            "ix_webhook_endpoint_partner_active",
            "partner_id",
            postgresql_where=text("active"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("partner.id", ondelete="CASCADE"), nullable=False
    )
    url: Mapped[str] = mapped_column(String(URL_LENGTH), nullable=False)
    description: Mapped[str | None] = mapped_column(String(200))
    kinds: Mapped[list[str]] = mapped_column(ARRAY(String(30)), nullable=False)
    secret: Mapped[str] = mapped_column(String(64), nullable=False, default=new_secret)
    # The secret before the last rotation, still signing until previous_secret_until.
    previous_secret: Mapped[str | None] = mapped_column(String(64))
    previous_secret_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    active: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True, server_default=true()
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    secret_rotated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    partner: Mapped[Partner] = relationship()
    deliveries: Mapped[list[WebhookDelivery]] = relationship(
        back_populates="endpoint", passive_deletes=True
    )

    def __repr__(self) -> str:
        return self.url

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.partner_id == partner_id

    def check(self, *, allow_local_http: bool) -> None:
        """The endpoint's rules, for a new or a changed one (DomainError at its field)."""
        self.url = check_url(self.url, allow_local_http=allow_local_http)
        kinds = list(dict.fromkeys(self.kinds or []))
        if not kinds:
            raise DomainError(gettext("Choose at least one kind of event."), field="kinds")
        unknown = [kind for kind in kinds if kind not in set(WebhookKind)]
        if unknown:
            raise DomainError(
                gettext("Unknown kind: %(kinds)s.", kinds=", ".join(unknown)), field="kinds"
            )
        self.kinds = [kind.value for kind in WebhookKind if kind.value in kinds]
        if not self.secret:
            self.secret = new_secret()

    def rotate_secret(self, now: dt.datetime) -> str:
        """A new secret signs from now on; the old one also signs for ROTATION_OVERLAP. Refused
        while the previous secret still signs (within a day of the last rotation): a second
        rotation would drop it at once, before the partner's system had switched to it."""
        if self.previous_secret_until is not None and now < self.previous_secret_until:
            raise DomainError(
                gettext(
                    "The secret was rotated less than a day ago: its previous one still signs "
                    "until %(until)s UTC. Rotate again after that.",
                    until=self.previous_secret_until.strftime("%Y-%m-%d %H:%M"),
                ),
                field="secret",
            )
        self.previous_secret, self.previous_secret_until = self.secret, now + ROTATION_OVERLAP
        self.secret = new_secret()
        self.secret_rotated_at = now
        return self.secret

    def signing_secrets(self, now: dt.datetime) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and the previous one
        during the overlap after a rotation."""
        live = [self.secret]
        if self.previous_secret and self.previous_secret_until and now < self.previous_secret_until:
            live.append(self.previous_secret)
        return live

    @property
    def kinds_text(self) -> str:
        return ", ".join(self.kinds or [])


class WebhookDelivery(Model):
    __tablename__ = "webhook_delivery"
    __table_args__ = (
        enum_check("status", DeliveryStatus, "ck_webhook_delivery_status"),
        UniqueConstraint("endpoint_id", "key", name="uq_webhook_delivery_endpoint_key"),
        # The sender's sweep: what is due or whose claim ran out, oldest first.
        Index(
            "ix_webhook_delivery_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'sending')"),
        ),
        # Order per endpoint: whether an older delivery of the endpoint is still unfinished.
        Index(
            "ix_webhook_delivery_unfinished",
            "endpoint_id",
            "id",
            postgresql_where=text("status IN ('pending', 'sending')"),
        ),
        Index("ix_webhook_delivery_partner", "partner_id", "id"),  # a partner's list, newest first
    )
    #: Attempts before a delivery fails: backoff 30 s doubling to 1 h, about 3 hours in all.
    MAX_ATTEMPTS = 10
    #: A delivery that failed an attempt this long after it was written is given up at once
    #: (one that waited behind an older one of a receiver down for a day gets one try, not ten).
    MAX_AGE = dt.timedelta(hours=24)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("webhook_endpoint.id", ondelete="CASCADE"), nullable=False
    )
    partner_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("partner.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(30), nullable=False)
    key: Mapped[str] = mapped_column(String(200), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    status: Mapped[str] = mapped_column(
        String(10), nullable=False, default=DeliveryStatus.PENDING.value
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    # The endpoint's last answer: its HTTP status and the start of its body.
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    endpoint: Mapped[WebhookEndpoint] = relationship(back_populates="deliveries")

    def __repr__(self) -> str:
        return f"{self.kind} #{self.id} ({self.status})"

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.partner_id == partner_id
