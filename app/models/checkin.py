"""CheckIn: every scan of a ticket at a gate, accepted or rejected."""

from __future__ import annotations

import datetime as dt
import enum

from flask_appbuilder import Model
from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.models.base import enum_check, utcnow
from app.models.event import Event, owned_event_ids
from app.models.gate import GateDevice
from app.models.order import Ticket


class ScanDirection(enum.StrEnum):
    IN = "in"
    OUT = "out"


class ScanResult(enum.StrEnum):
    VALID = "valid"
    ALREADY_USED = "already_used"
    INVALID = "invalid"
    REVOKED = "revoked"
    WRONG_EVENT = "wrong_event"
    NOT_VALID_NOW = "not_valid_now"


class CheckIn(Model):
    __tablename__ = "checkin"
    __table_args__ = (
        enum_check("direction", ScanDirection, "ck_checkin_direction"),
        enum_check("result", ScanResult, "ck_checkin_result"),
        Index("ix_checkin_event_scanned", "event_id", "scanned_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event.id", ondelete="CASCADE"), nullable=False
    )
    # Null for codes that did not verify: a forged code names no ticket.
    ticket_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ticket.id", ondelete="SET NULL"), index=True
    )
    gate: Mapped[str] = mapped_column(String(100), nullable=False)
    direction: Mapped[str] = mapped_column(String(3), nullable=False, default=ScanDirection.IN)
    result: Mapped[str] = mapped_column(String(20), nullable=False)
    nonce: Mapped[str | None] = mapped_column(String(64), unique=True)
    # What a retry under the nonce must send again (services/checkin/rules.fingerprint); null
    # for scans logged before it was kept.
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    scanned_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    device_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("gate_device.id", ondelete="SET NULL"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="SET NULL")
    )
    # Scanned by a device without network and uploaded later; ``device_verdict`` is what the
    # device showed, ``conflict`` marks a scan the device admitted that another gate had admitted
    # first.
    offline: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    device_verdict: Mapped[str | None] = mapped_column(String(20))
    conflict: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    event: Mapped[Event] = relationship()
    ticket: Mapped[Ticket | None] = relationship()
    device: Mapped[GateDevice | None] = relationship()

    @property
    def seat(self) -> str:
        return self.ticket.seat_label if self.ticket else "-"

    @property
    def holder(self) -> str:
        """Who holds the scanned ticket's place now: a transferred ticket's new holder."""
        return (self.ticket.current_holder if self.ticket else None) or "-"

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.event_id.in_(owned_event_ids(partner_id))
