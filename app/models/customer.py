"""Customer: the person who buys tickets, with a login on the platform."""

from __future__ import annotations

import datetime as dt

from flask_appbuilder import Model
from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import utcnow
from app.models.partner import PartnerUser


class Customer(Model):
    __tablename__ = "customer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), unique=True
    )
    name: Mapped[str] = mapped_column(String(150), nullable=False)
    email: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    # When the customer followed the link e-mailed at sign-up. Until then, mails about their
    # purchases wait in the outbox (held); buying is not blocked.
    email_confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    user: Mapped[PartnerUser | None] = relationship(PartnerUser)

    def __repr__(self) -> str:
        return f"{self.name} <{self.email}>"
