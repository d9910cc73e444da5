"""The scan rule, pure: what a scan request is, when the doors are open, and what a scan does to
a ticket's entry. No database, no Redis, no Flask.

A ticket admits one entry. Its entry is in one of three states: none (never scanned in), ``in``
or ``out``. An ``in`` scan takes the entry when there is none; with re-entry allowed, an ``out``
allows one later ``in``; any other ``in`` answers "already used" with the first entry's time and
gate. Only someone inside goes out: an ``out`` scan of a ticket that is not in changes nothing
and answers "invalid" (reason ``not_checked_in``). The doors are open between the event's
check-in opening and closing times, both included, unless the event is cancelled; a revoked
ticket is refused after the doors and before the entry (``scanning.evaluate`` holds that order).

The database store applies ``decide_entry`` itself. The rule also exists where Python cannot
run: two Lua scripts in Redis (``enter.lua``, ``fast_scan.lua``) and the gate page's offline
judge (``app/static/gate-core.js``). Every copy is tested against one table of cases,
``tests/cases/scan_rules.json``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from flask_babel import gettext

from app.models import DomainError, ScanDirection, ScanResult
from app.models.base import MAX_INT, utcnow
from app.models.codes import TicketClaim

NONCE = re.compile(r"[A-Za-z0-9._:-]{8,48}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: How far in the future a device clock may be before its scanned_at is not believed.
CLOCK_SKEW = dt.timedelta(minutes=5)
#: The stores' answer to an ``out`` scan of a ticket that is not in; answered as "invalid".
NOT_IN = "not_in"


@dataclass(frozen=True)
class ScanRequest:
    code: str
    gate: str
    direction: str
    nonce: str
    scanned_at: dt.datetime
    offline: bool = False
    device_verdict: str | None = None
    event_id: int | None = None  # the event the gate is working, when it says


@dataclass
class EventInfo:
    event_id: int
    partner_id: int
    public_key: str
    opens_at: dt.datetime
    closes_at: dt.datetime
    allow_reentry: bool
    cancelled: bool = False


@dataclass
class Outcome:
    result: str
    claim: TicketClaim | None = None
    event_id: int | None = None  # the ticket's event, once its signature verified
    details: dict[str, Any] = field(default_factory=dict)
    log_event_id: int | None = None  # the event the scan is logged under

    @property
    def ticket_id(self) -> int | None:
        """The ticket the scan is about, for the log: only a genuine ticket of the logged event."""
        if self.claim is None or self.event_id is None or self.event_id != self.log_event_id:
            return None
        return self.claim.ticket_id

    def answer(self) -> dict[str, Any]:
        body: dict[str, Any] = {"result": self.result}
        if self.claim is not None and self.event_id is not None:
            body["ticket_id"] = self.claim.ticket_id
            body["event_id"] = self.claim.event_id
            body["seat"] = self.claim.label
        body.update(self.details)
        return body


class FirstAnswer(NamedTuple):
    """What a nonce answered first, kept for a retry of the same scan."""

    fingerprint: str | None  # the scan's ``fingerprint`` (None: kept before there were any)
    answer: dict[str, Any]
    mine: bool = False  # recorded by this request (not a retry's, nor a racing request's)


def fingerprint(request: ScanRequest) -> str:
    """What a retry under the same nonce must send again: the code, gate, direction and the
    event the gate works. Not the time nor the device's verdict: the gate page uploads a scan
    whose online answer did not come in time under the same nonce, timed and judged by itself."""
    scan = json.dumps([request.code, request.gate, request.direction, request.event_id])
    return hashlib.sha256(scan.encode()).hexdigest()


class EntryDecision(NamedTuple):
    result: str  # valid, already_used or NOT_IN
    state: str | None  # the entry's state after the scan (None: still never scanned in)


def decide_entry(state: str | None, direction: str, allow_reentry: bool) -> EntryDecision:
    """What a scan in ``direction`` does to an entry in ``state`` (None: no entry yet)."""
    if direction == ScanDirection.IN:
        if state is None or (allow_reentry and state == ScanDirection.OUT):
            return EntryDecision(ScanResult.VALID.value, ScanDirection.IN.value)
        return EntryDecision(ScanResult.ALREADY_USED.value, state)
    if state == ScanDirection.IN:
        return EntryDecision(ScanResult.VALID.value, ScanDirection.OUT.value)
    return EntryDecision(NOT_IN, state)


def doors_open(info: EventInfo, moment: dt.datetime) -> bool:
    """Whether the event admits anyone at ``moment``: not cancelled, within its window."""
    return not info.cancelled and info.opens_at <= moment <= info.closes_at


def parse_scan(
    payload: Any, *, offline: bool = False, now: dt.datetime | None = None
) -> ScanRequest:
    """A scan request from JSON, with field errors for what is missing or malformed."""
    if not isinstance(payload, dict):
        raise DomainError(gettext("Send a JSON object."), code="invalid_request")
    now = now or utcnow()
    code = payload.get("code")
    if not isinstance(code, str) or not code.strip() or len(code) > 400 or _CONTROL.search(code):
        raise DomainError(gettext("Give the scanned code."), field="code")
    gate = payload.get("gate")
    if not isinstance(gate, str) or not gate.strip() or len(gate) > 100 or _CONTROL.search(gate):
        raise DomainError(gettext("Name the gate (up to 100 printable characters)."), field="gate")
    direction = payload.get("direction", "in")
    if direction not in (ScanDirection.IN, ScanDirection.OUT):
        raise DomainError(gettext('The direction is "in" or "out".'), field="direction")
    nonce = payload.get("nonce")
    if not isinstance(nonce, str) or not NONCE.fullmatch(nonce):
        raise DomainError(
            gettext("Send a nonce of 8 to 48 letters, digits or . _ : -, new for each scan."),
            field="nonce",
        )
    scanned_at = now
    raw_time = payload.get("scanned_at")
    if raw_time is not None:
        try:
            scanned_at = parse_time(raw_time)
        except (TypeError, ValueError, OverflowError):
            raise DomainError(
                gettext("scanned_at is an ISO 8601 time."), field="scanned_at"
            ) from None
        if scanned_at > now + CLOCK_SKEW:
            raise DomainError(gettext("scanned_at is in the future."), field="scanned_at")
        if scanned_at.year < 2000:
            raise DomainError(gettext("scanned_at is too far in the past."), field="scanned_at")
    verdict = payload.get("verdict")
    if (
        offline
        and verdict is not None
        and (not isinstance(verdict, str) or verdict not in set(ScanResult))
    ):
        raise DomainError(gettext("Unknown verdict."), field="verdict")
    event_id = payload.get("event_id")
    if event_id is not None and (
        isinstance(event_id, bool) or not isinstance(event_id, int) or not 0 < event_id <= MAX_INT
    ):
        raise DomainError(gettext("event_id is an event's id."), field="event_id")
    return ScanRequest(
        code=code.strip(),
        gate=gate.strip(),
        direction=str(direction),
        nonce=nonce,
        scanned_at=scanned_at,
        offline=offline,
        device_verdict=verdict if offline else None,
        event_id=event_id,
    )


def parse_time(raw: Any) -> dt.datetime:
    """An ISO 8601 time as naive UTC (how the database keeps times)."""
    if not isinstance(raw, str):
        raise TypeError(raw)
    parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def iso(moment: dt.datetime) -> str:
    """A naive UTC time as the gates read it: whole seconds, ``Z``."""
    return moment.replace(microsecond=0).isoformat() + "Z"
