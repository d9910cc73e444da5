"""Login sessions: one row per signed-in browser, named by the id its session cookie carries.

The cookie is signed, not stored: without a row, a copy of it would stay good after its owner
logged out or changed the password. A request's user is loaded only while its row exists
(app/services/accounts.py), and ending a session deletes the row.
"""

from __future__ import annotations

import datetime as dt

from flask_appbuilder import Model
from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import utcnow


class LoginSession(Model):
    __tablename__ = "login_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime, nullable=False, default=utcnow, index=True
    )
