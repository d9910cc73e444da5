"""The Redis store: a scan of an armed event judged from Redis, so the gates keep working with
PostgreSQL down, and written to the database before it is answered while PostgreSQL is up.

An event is *armed* when its public key, doors, revocations, entries and gate credentials are
copied into Redis (``arming``); an event not armed yet is armed from the database on its first
scan. Entries are taken by one atomic script (``enter.lua``: the first ``in`` of a ticket wins,
like ``SET NX``; with re-entry an ``out`` allows one later ``in``). A scan's answer (with its
request's fingerprint) is kept under its nonce and the scan queued for the database log by a
second script (``record.lua``), in one step, so a retry gets the first answer and is logged
once. The scan is then written to the database, which may overrule an admission
(``scan_log.write_through``): only then is it answered. The queue is what the database gets
when it cannot be written now (``scan_log.flush_scan_log``), idempotent by nonce, so nothing
is lost or doubled when the database comes back.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from flask_babel import gettext
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.models import ScanDirection, ScanResult
from app.models.base import utcnow
from app.services.checkin.arming import arm_event
from app.services.checkin.errors import UNREACHABLE, Unavailable
from app.services.checkin.redis_keys import (
    LOG_KEY,
    NONCE_TTL_SECONDS,
    entries_key,
    event_key,
    nonce_key,
    nonce_value,
    read_nonce_value,
    revoked_key,
    script,
    tickets_key,
)
from app.services.checkin.rules import (
    EventInfo,
    FirstAnswer,
    Outcome,
    ScanRequest,
    iso,
    parse_time,
)
from app.services.checkin.scan_log import write_through
from app.services.checkin.scanners import Scanner

log = logging.getLogger(__name__)


class RedisStore:
    """Validation from Redis alone for armed events; an event not armed yet is armed from the
    database on its first scan."""

    def __init__(self, client: redis.Redis, session: Session) -> None:
        self.client = client
        self.session = session
        self._enter = script(client, "enter")
        self._record = script(client, "record")

    def recall(self, nonce: str) -> FirstAnswer | None:
        raw = self.client.get(nonce_key(nonce))
        return read_nonce_value(raw) if raw else None

    def event_info(self, event_id: int) -> EventInfo | None:
        raw = self.client.hgetall(event_key(event_id))
        if not raw:
            try:
                if not arm_event(self.session, event_id):
                    return None
            except OperationalError as exc:
                log.warning("event %s is not armed and the database is unreachable", event_id)
                self.session.rollback()
                raise Unavailable(gettext(UNREACHABLE)) from exc
            raw = self.client.hgetall(event_key(event_id))
        return EventInfo(
            event_id=event_id,
            partner_id=int(raw["partner_id"]),
            public_key=raw["public_key"],
            opens_at=parse_time(raw["opens_at"]),
            closes_at=parse_time(raw["closes_at"]),
            allow_reentry=raw["allow_reentry"] == "1",
            cancelled=raw.get("cancelled") == "1",
        )

    def is_revoked(self, event_id: int, ticket_id: int) -> bool:
        return bool(self.client.sismember(revoked_key(event_id), ticket_id))

    def ticket_details(self, event_id: int, ticket_id: int) -> dict[str, Any]:
        raw = self.client.hget(tickets_key(event_id), ticket_id)
        return json.loads(raw) if raw else {}

    def enter(
        self, info: EventInfo, ticket_id: int, request: ScanRequest, nonce: str
    ) -> tuple[str, str | None, str | None]:
        answer = self._enter(
            keys=[entries_key(info.event_id)],
            args=[
                ticket_id,
                request.direction,
                iso(request.scanned_at),
                request.gate,
                "1" if info.allow_reentry else "0",
                nonce,
            ],
        )
        if answer.startswith("already_used|"):
            _, first_at, first_gate = answer.split("|", 2)
            return ScanResult.ALREADY_USED.value, first_at, first_gate
        return answer, None, None

    def record(
        self,
        scanner: Scanner,
        request: ScanRequest,
        fingerprint: str,
        outcome: Outcome,
        answer: dict[str, Any],
    ) -> FirstAnswer:
        entry = {
            "event_id": outcome.log_event_id,
            "ticket_id": outcome.ticket_id,
            "gate": request.gate,
            "direction": request.direction,
            "result": outcome.result,
            "nonce": scanner.scoped(request.nonce),
            "request_fingerprint": fingerprint,
            "scanned_at": request.scanned_at.isoformat(),
            "recorded_at": utcnow().isoformat(),
            "device_id": scanner.device_id,
            "user_id": scanner.user_id,
            "offline": request.offline,
            "device_verdict": request.device_verdict,
            "conflict": bool(answer.get("conflict")),
            "entry_state": _entry_state(outcome, request),
        }
        earlier = self._record(
            keys=[nonce_key(scanner.scoped(request.nonce)), LOG_KEY],
            args=[
                nonce_value(fingerprint, json.dumps(answer)),
                json.dumps(entry),
                NONCE_TTL_SECONDS,
            ],
        )
        if earlier:
            return read_nonce_value(earlier)
        return write_through(self.session, self.client, entry, answer, fingerprint)


def _entry_state(outcome: Outcome, request: ScanRequest) -> str | None:
    """What an admitted scan did to the ticket's entry, for the database copy."""
    if outcome.result != ScanResult.VALID:
        return None
    return "in" if request.direction == ScanDirection.IN else "out"
