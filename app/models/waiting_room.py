"""Waiting room of a high-demand on-sale: a line per event, and each customer's place in it.

Places are given out as admission times by the generic cell rate algorithm (GCRA, as in
network traffic shaping): the line remembers when the next buyer may come in (``next_slot``);
each newcomer is given ``max(now, next_slot - burst)`` and pushes ``next_slot`` one interval on.
So buyers come in first come, first served, at the event's rate, a short burst of them at once
after a quiet spell, and a customer's turn is known the moment they join: asking again reads
one row and writes nothing.
"""

from __future__ import annotations

import datetime as dt

from flask_appbuilder import Model
from sqlalchemy import DateTime, ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column


class WaitingLine(Model):
    __tablename__ = "waiting_line"

    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event.id", ondelete="CASCADE"), primary_key=True
    )
    # When the next newcomer would come in, before the burst allowance (GCRA's theoretical
    # arrival time).
    next_slot: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class WaitingEntry(Model):
    __tablename__ = "waiting_entry"
    __table_args__ = (Index("ix_waiting_entry_customer", "customer_id"),)

    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True
    )
    joined_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    # The customer may hold spots from this moment for WAITING_ROOM_TURN_MINUTES.
    admit_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
