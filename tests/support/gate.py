"""Gate check-in as the tests drive it: events whose doors are open, gate devices, scans through
the API, the scan log, forged codes."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import CheckIn, Event, Partner
from app.models.base import utcnow
from app.services import checkin
from tests.support.builders import PartnerActor, make_event


def open_event(partner: Partner, name: str = "Concert", **fields: Any) -> Event:
    """A published event of 30 seats whose check-in opened an hour ago (``fields`` override)."""
    now = utcnow()
    fields.setdefault("checkin_opens_at", now - dt.timedelta(hours=1))
    fields.setdefault("checkin_closes_at", now + dt.timedelta(days=1))
    event = make_event(partner, name, rows=("A", "C"), seats=10, **fields)
    event.publish()
    db.session.commit()
    return event


def device(partner: Partner, *events: Event, name: str = "North 1") -> dict[str, str]:
    """A gate device registered for ``events``; returns its API headers."""
    _, token = checkin.register_device(
        db.session, PartnerActor(partner), name, [e.id for e in events]
    )
    return {"Authorization": f"Bearer {token}"}


def scan(
    client: FlaskClient,
    auth: dict[str, str],
    code: str,
    gate: str = "North",
    direction: str = "in",
    nonce: str | None = None,
    **extra: Any,
) -> Any:
    body = {"code": code, "gate": gate, "direction": direction, "nonce": nonce or uuid.uuid4().hex}
    return client.post("/api/v1/checkin/scan", json={**body, **extra}, headers=auth)


def result(response: Any) -> dict[str, Any]:
    """A scan's answer, which must be a 200."""
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def logged() -> list[CheckIn]:
    """The scan log as the database has it (Redis-queued scans flushed first)."""
    checkin.flush_scan_log(db.session)
    db.session.expire_all()
    return list(db.session.scalars(select(CheckIn).order_by(CheckIn.id)))


def forged(code: str) -> str:
    """The same ticket with one byte of its signature (the last 64 bytes) flipped."""
    raw = bytearray(base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)))
    raw[-10] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
