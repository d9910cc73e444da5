"""Gate staff and devices: who may scan tickets for which events (ARCHITECTURE.md, "The scan path").

A partner assigns its gate users to events, and registers gate devices (a phone or a turnstile)
that authenticate with their own token. Only a hash of the token is kept; a revoked device is
refused at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from flask_appbuilder import Model
from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.models.base import utcnow
from app.models.event import Event, owned_event_ids
from app.models.partner import Partner, PartnerUser

gate_device_event = Table(
    "gate_device_event",
    Model.metadata,
    Column(
        "device_id", Integer, ForeignKey("gate_device.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("event_id", Integer, ForeignKey("event.id", ondelete="CASCADE"), primary_key=True),
)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class GateDevice(Model):
    __tablename__ = "gate_device"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("partner.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # The first characters of the token, to tell devices apart in the list.
    token_hint: Mapped[str] = mapped_column(String(8), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    partner: Mapped[Partner] = relationship()
    events: Mapped[list[Event]] = relationship(secondary=gate_device_event)

    def __repr__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def status(self) -> str:
        return "revoked" if self.revoked_at else "active"

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.partner_id == partner_id


class GateAssignment(Model):
    """A gate user may scan for this event."""

    __tablename__ = "gate_assignment"
    __table_args__ = (UniqueConstraint("user_id", "event_id", name="uq_gate_assignment"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    user: Mapped[PartnerUser] = relationship()
    event: Mapped[Event] = relationship()

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.event_id.in_(owned_event_ids(partner_id))


class CheckinEntry(Model):
    """Where a ticket stands at the gates: its first entry (kept forever) and, with re-entry,
    whether the holder is in or out now. One row per ticket: the key admits it once."""

    __tablename__ = "checkin_entry"
    __table_args__ = (
        Index(
            "ix_checkin_entry_redis_pending",
            "redis_pending_at",
            postgresql_where=text("redis_pending_at IS NOT NULL"),
        ),
    )

    ticket_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event.id", ondelete="CASCADE"), nullable=False, index=True
    )
    state: Mapped[str] = mapped_column(String(3), nullable=False, default="in")
    first_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    first_gate: Mapped[str] = mapped_column(String(100), nullable=False)
    last_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    # When the database store changed this entry while Redis was unreachable and Redis has not
    # been told yet (services/checkin/catch_up.py); null once it has, or when it never had to.
    redis_pending_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
