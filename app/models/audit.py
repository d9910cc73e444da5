"""The staff audit log: who changed what on events, sections, spots, partners, refunds, payouts
and users, with each field's value before and after (written by app/services/audit.py in the
transaction of the change itself).

An entry copies what it names (the actor's login and roles, the object's label) instead of
pointing at it: it outlives the rows it describes and reads the same after a user is renamed
or deleted. ``partner_id`` ties an entry to the partner whose row changed, so a partner's users
read their own entries through the one partner scope (app/services/scoping.py).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask_appbuilder import Model
from sqlalchemy import BigInteger, DateTime, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.models.base import utcnow
from app.models.partner import Partner

# The actor of a change made with no user (a Celery task, the command line, a service).
SYSTEM_ACTOR = "system"


class AuditEntry(Model):
    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ix_audit_entry_object", "object_type", "object_id"),
        Index("ix_audit_entry_partner_at", "partner_id", "at"),
        Index("ix_audit_entry_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    # The user who made the change (no foreign key: the entry outlives the user), with copies of
    # its login and roles as they were; none and "system" for a task or the command line.
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor_name: Mapped[str] = mapped_column(String(200), nullable=False)
    actor_roles: Mapped[str] = mapped_column(String(200), nullable=False)
    # Where the change came from: "POST /eventview/edit/3", "task:refunds.cancelled_event",
    # "cli:demo load", "system".
    source: Mapped[str] = mapped_column(String(200), nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    # Whose row it is (no foreign key either: a deleted partner's history stays).
    partner_id: Mapped[int | None] = mapped_column(Integer)
    object_type: Mapped[str] = mapped_column(String(40), nullable=False)
    # None for an entry summing up many rows (spots blocked at once: their ids in ``changes``).
    object_id: Mapped[int | None] = mapped_column(Integer)
    object_label: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40), nullable=False)
    # {field: [before, after]}: money in integer cents or Decimal text, times in ISO 8601 UTC,
    # secrets as "[redacted]" (that they changed, never their values).
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)

    partner: Mapped[Partner | None] = relationship(
        Partner, primaryjoin="foreign(AuditEntry.partner_id) == Partner.id", viewonly=True
    )

    def __repr__(self) -> str:
        return f"{self.action} {self.object_type} {self.object_id or ''}".strip()

    @classmethod
    def partner_scope(cls, partner_id: int) -> ColumnElement[bool]:
        return cls.partner_id == partner_id

    @property
    def object(self) -> str:
        ident = f" {self.object_id}" if self.object_id is not None else ""
        label = f" ({self.object_label})" if self.object_label else ""
        return f"{self.object_type}{ident}{label}"

    @property
    def actor(self) -> str:
        return f"{self.actor_name} [{self.actor_roles}]"

    @property
    def changes_text(self) -> str:
        """One line per field: "price_cents: 22000 -> 67234"."""
        return "\n".join(
            f"{field}: {_shown(before)} -> {_shown(after)}"
            for field, (before, after) in sorted((self.changes or {}).items())
        )


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
