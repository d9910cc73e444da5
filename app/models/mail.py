"""E-mail: the outbox (one row per mail, written in the transaction of the change that causes
it) and the single-use password-reset links.

A mail is kept as its cause, not its text: the kind (``order_paid``), the ids it is about
(``params``), its address and language. The sender renders it when it sends it
(``app/services/mail/``): a PDF of tickets is not drawn inside a purchase's transaction, and a
mail retried after a failure reads the same rows. ``key`` names the cause, unique, so a cause
written twice (a retried task, a reconcile run) is one mail.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from typing import Any

from flask_appbuilder import Model
from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import enum_check, utcnow


class MailStatus(enum.StrEnum):
    # waiting for its address to be confirmed (a customer's first purchase, say): sent once it is
    HELD = "held"
    PENDING = "pending"  # due at next_attempt_at
    SENDING = "sending"  # claimed by a sender until claimed_until; after that, anyone's again
    SENT = "sent"
    FAILED = "failed"  # gave up after MAX_ATTEMPTS; an admin may send it again
    # Not sent, and rightly: what it was about is gone or moot (an order refunded before its
    # confirmation left, a reset link used or voided, a summary turned off). Not a failure.
    DROPPED = "dropped"


class OutboxMail(Model):
    __tablename__ = "mail_outbox"
    __table_args__ = (
        enum_check("status", MailStatus, "ck_mail_outbox_status"),
        # The sender's sweep: what is due or whose claim ran out, oldest first.
        Index(
            "ix_mail_outbox_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'sending')"),
        ),
        Index("ix_mail_outbox_held_to", "to_address", postgresql_where=text("status = 'held'")),
    )
    MAX_ATTEMPTS = 8

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    to_address: Mapped[str] = mapped_column(String(320), nullable=False)
    locale: Mapped[str] = mapped_column(String(8), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(
        String(10), nullable=False, default=MailStatus.PENDING.value
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(String(300))  # as last rendered
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    def __repr__(self) -> str:
        return f"{self.kind} to {self.to_address} ({self.status})"

    @property
    def message_id(self) -> str:
        """The Message-ID of every attempt: a mail sent again after a crash between the SMTP
        server's acceptance and our record of it carries the same id, so mail systems and
        readers that deduplicate by Message-ID show it once."""
        cause = hashlib.sha256(self.key.encode()).hexdigest()[:16]  # a key may hold an address
        return f"<outbox-{self.id}.{cause}@bilheteria>"


class PasswordReset(Model):
    """A password-reset link: only the SHA-256 of its token is kept (a database reader cannot
    use it); it expires, is used once, and a newer one voids it (``voided_at``)."""

    __tablename__ = "password_reset"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    voided_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
