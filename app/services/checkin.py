"""Ticket validation at the gate (DESIGN.md, "Ticket validation").

A scan verifies the code's Ed25519 signature with the event's public key before anything else,
then checks the gate's events, the check-in window and revocations, and records the first entry
atomically. Two stores answer the same questions:

- ``RedisStore`` when Redis is configured and the event is *armed* (its public key, revocations,
  entries and gate credentials copied into Redis): no database on the scan path, so the gate
  keeps working with PostgreSQL down. Entries are taken by one atomic Redis script (the first
  ``in`` of a ticket wins, like ``SET NX``; with re-entry an ``out`` allows one later ``in``). The
  scan log is queued in Redis and written to the database by ``flush_scan_log`` (a Celery beat
  task), idempotent by nonce, so nothing is lost or doubled when the database comes back.
- ``DbStore`` otherwise: the unique ticket key of ``checkin_entry`` admits a ticket once, and the
  scan is logged in the same transaction.

A retry with the same nonce returns the first answer and records nothing new.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import current_app
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, joinedload

from app.models import (
    Busy,
    CheckIn,
    CheckinEntry,
    Conflict,
    DomainError,
    Event,
    EventStatus,
    GateAssignment,
    GateDevice,
    NotFound,
    PartnerUser,
    ScanDirection,
    ScanResult,
    Ticket,
    TicketStatus,
    token_hash,
)
from app.models.base import MAX_INT, utcnow
from app.models.codes import InvalidCode, TicketClaim, read_claim, unb64, verify_ticket
from app.services.after_commit import after_commit
from app.services.scoping import Actor, get_owned, get_owned_many, role_names

log = logging.getLogger(__name__)

NONCE_TTL_SECONDS = 3 * 24 * 3600
_NONCE = re.compile(r"[A-Za-z0-9._:-]{8,48}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: How far in the future a device clock may be before its scanned_at is not believed.
CLOCK_SKEW = dt.timedelta(minutes=5)
UNREACHABLE = "Check-in cannot reach its database: judge the ticket offline and upload it later."
# Revocations of an event that is not armed yet are kept this long (arming reads the rest).
UNARMED_REVOCATIONS_SECONDS = 7 * 24 * 3600
LOG_KEY = "ck:log"


# --------------------------------------------------------------------------- who scans


@dataclass(frozen=True)
class Scanner:
    """A gate device or a gate user, with the events it may scan."""

    partner_id: int
    event_ids: frozenset[int]
    device_id: int | None = None
    user_id: int | None = None

    def scoped(self, nonce: str) -> str:
        """A nonce is the scanner's own: two devices may well count alike."""
        owner = f"d{self.device_id}" if self.device_id is not None else f"u{self.user_id}"
        return f"{owner}:{nonce}"

    def to_json(self) -> str:
        return json.dumps(
            {
                "partner_id": self.partner_id,
                "event_ids": sorted(self.event_ids),
                "device_id": self.device_id,
                "user_id": self.user_id,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> Scanner:
        data = json.loads(raw)
        return cls(
            partner_id=data["partner_id"],
            event_ids=frozenset(data["event_ids"]),
            device_id=data.get("device_id"),
            user_id=data.get("user_id"),
        )


class Unavailable(Busy):
    """The database (or Redis) is unreachable and what the scan needs is not cached: no verdict
    on the ticket. The gate judges it offline and uploads it later."""

    code = "unavailable"


@contextmanager
def _unavailable_without_database(session: Session) -> Iterator[None]:
    """The database unreachable where a scan needs it: roll back and answer Unavailable (503),
    never a verdict on the ticket."""
    try:
        yield
    except OperationalError as exc:
        session.rollback()
        raise Unavailable(UNREACHABLE) from exc


class NotAuthorized(DomainError):
    status = 401
    code = "not_authorized"


_CLIENTS: dict[str, redis.Redis] = {}


def redis_for(url: str) -> redis.Redis:
    """One connection pool per Redis URL and process, with the gate's short timeouts (used by
    the fast path too, which runs outside an app context)."""
    client = _CLIENTS.get(url)
    if client is None:
        client = redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True
        )
        _CLIENTS[url] = client
    return client


_SCRIPTS: dict[tuple[int, str], Any] = {}


def _script(client: redis.Redis, text: str) -> Any:
    """A Lua script bound to a client, hashed once per process rather than on every scan."""
    key = (id(client), text)
    script = _SCRIPTS.get(key)
    if script is None:
        script = _SCRIPTS[key] = client.register_script(text)
    return script


def redis_client() -> redis.Redis | None:
    """The app's Redis, or None on the embedded default (no Redis)."""
    url = current_app.config.get("REDIS_URL")
    return redis_for(url) if url else None


#: Revoked device tokens (hashes): checked with the cached credentials, in the same round trip.
REVOKED_DEVICES_KEY = "ck:dev:revoked"
#: Cached device credentials expire (and are re-cached from the database) after this long.
DEVICE_CACHE_SECONDS = 12 * 3600


def _device_key(digest: str) -> str:
    return f"ck:dev:{digest}"


def _user_key(user_id: int) -> str:
    return f"ck:usr:{user_id}"


def scanner_for_token(session: Session, token: str) -> Scanner:
    """The scanner a bearer token stands for: a gate device's token, or a gate user's (or partner
    user's) JWT. Answered from Redis when cached there, so it works with the database down."""
    token = (token or "").strip()
    if not token:
        raise NotAuthorized("Send a device token or a gate staff login token.")
    if token.count(".") == 2:
        return _scanner_for_jwt(session, token)
    digest = token_hash(token)
    cache = redis_client()
    if cache is not None:
        try:
            pipe = cache.pipeline(transaction=False)
            pipe.get(_device_key(digest))
            pipe.sismember(REVOKED_DEVICES_KEY, digest)
            cached, revoked = pipe.execute()
        except redis.RedisError:
            cached, revoked = None, False
        if revoked:
            raise NotAuthorized("This device was revoked.", reason="device")
        if cached:
            return Scanner.from_json(cached)
    with _unavailable_without_database(session):
        device = session.scalar(
            select(GateDevice)
            .where(GateDevice.token_hash == digest)
            .options(joinedload(GateDevice.events))
        )
    if device is None or not device.is_active:
        raise NotAuthorized("This device is not registered or was revoked.", reason="device")
    scanner = Scanner(
        partner_id=device.partner_id,
        event_ids=frozenset(e.id for e in device.events),
        device_id=device.id,
    )
    _cache_scanner(_device_key(digest), scanner, ttl=DEVICE_CACHE_SECONDS)
    return scanner


def _scanner_for_jwt(session: Session, token: str) -> Scanner:
    from flask_jwt_extended import decode_token

    try:
        claims = decode_token(token)
        if claims.get("type") != "access":
            raise ValueError("not an access token")
        user_id = int(claims["sub"])
    except Exception as exc:  # noqa: BLE001 - expired, forged or malformed: all refused
        raise NotAuthorized("This login has expired or is not valid: log in again.") from exc
    cache = redis_client()
    if cache is not None:
        try:
            cached = cache.get(_user_key(user_id))
        except redis.RedisError:
            cached = None
        if cached:
            return Scanner.from_json(cached)
    with _unavailable_without_database(session):
        scanner = staff_scanner(session, user_id)
    _cache_scanner(_user_key(user_id), scanner, ttl=12 * 3600)
    return scanner


def staff_scanner(session: Session, user_id: int) -> Scanner:
    """A gate user scans the events it is assigned to; a partner user all its partner's events."""
    user = session.get(PartnerUser, user_id)
    if user is None or not user.active or user.partner_id is None:
        raise NotAuthorized("Only a partner's gate staff can scan tickets.")
    roles = role_names(user)
    if "Partner" in roles:
        event_ids = session.scalars(select(Event.id).where(Event.partner_id == user.partner_id))
    elif "Gate" in roles:
        event_ids = session.scalars(
            select(GateAssignment.event_id)
            .join(Event, Event.id == GateAssignment.event_id)
            .where(GateAssignment.user_id == user_id, Event.partner_id == user.partner_id)
        )
    else:
        raise NotAuthorized("Only a partner's gate staff can scan tickets.")
    return Scanner(partner_id=user.partner_id, event_ids=frozenset(event_ids), user_id=user_id)


def _cache_scanner(key: str, scanner: Scanner, ttl: int | None) -> None:
    cache = redis_client()
    if cache is None:
        return
    try:
        cache.set(key, scanner.to_json(), ex=ttl)
    except redis.RedisError:
        log.warning("could not cache a scanner in Redis", exc_info=True)


def _forget_scanner(key: str) -> None:
    cache = redis_client()
    if cache is None:
        return
    try:
        cache.delete(key)
    except redis.RedisError:
        log.error("could not drop cached gate credentials %s from Redis", key)


# --------------------------------------------------------------------------- devices, staff


def register_device(
    session: Session, actor: Actor, name: str, event_ids: Sequence[int]
) -> tuple[GateDevice, str]:
    """A new gate device for the actor's partner; returns it and its token (shown once)."""
    device = GateDevice(name=name, events=list(get_owned_many(session, Event, event_ids, actor)))
    token = prepare_device(session, actor, device)
    session.add(device)
    session.commit()
    return device, token


def prepare_device(session: Session, actor: Actor, device: GateDevice) -> str:
    """Check a new device (a name, events of one partner the actor owns), tie it to that partner
    and give it a fresh token; returns the token, which is kept only as a hash."""
    check_device(session, actor, device)
    token = secrets.token_urlsafe(32)
    device.token_hash = token_hash(token)
    device.token_hint = token[:6]
    return token


def check_device(session: Session, actor: Actor, device: GateDevice) -> None:
    device.name = (device.name or "").strip()
    if not device.name:
        raise DomainError("Name the device (for example 'North gate phone 1').", field="name")
    if not device.events:
        raise DomainError("Choose at least one event for this device.", field="events")
    owned = get_owned_many(session, Event, [e.id for e in device.events], actor)
    partners = {event.partner_id for event in owned}
    if len(partners) != 1:
        raise DomainError("A device scans the events of one partner.", field="events")
    partner_id = partners.pop()
    if device.partner_id is not None and device.partner_id != partner_id:
        raise DomainError("A device keeps the partner it was registered for.", field="events")
    device.partner_id = partner_id


def revoke_device(session: Session, actor: Actor, device_id: int) -> GateDevice:
    """The device is refused from now on, in Redis (at once) and in the database."""
    device = get_owned(session, GateDevice, device_id, actor)
    if device.revoked_at is None:
        device.revoked_at = utcnow()
        session.commit()
    _refuse_device(device.token_hash)
    return device


def _refuse_device(digest: str) -> None:
    """Refuse a device at once in Redis; if Redis is unreachable now, the next arming run (every
    few minutes) does it, and cached credentials expire within DEVICE_CACHE_SECONDS anyway."""
    cache = redis_client()
    if cache is None:
        return
    try:
        pipe = cache.pipeline(transaction=False)
        pipe.sadd(REVOKED_DEVICES_KEY, digest)
        pipe.delete(_device_key(digest))
        pipe.execute()
    except redis.RedisError:
        log.error("could not refuse a revoked device in Redis; the next arming run will")


def device_changed(device: GateDevice) -> None:
    """Drop the cached credentials of an edited device (its events may have changed)."""
    _forget_scanner(_device_key(device.token_hash))


def arm_owned_event(session: Session, actor: Actor, event_id: int) -> Event:
    """Arm an event by hand (its partner's staff or the platform)."""
    event = get_owned(session, Event, event_id, actor)
    if event.status != EventStatus.PUBLISHED:
        raise Conflict(f"{event.name} is {event.status}: only a published event is armed.")
    arm_event(session, event.id)
    return event


def assign_gate_user(session: Session, actor: Actor, user_id: int, event_id: int) -> None:
    event = get_owned(session, Event, event_id, actor)
    user = session.get(PartnerUser, user_id)
    if user is None or user.partner_id != event.partner_id or "Gate" not in role_names(user):
        raise NotFound("Gate user not found.", field="user")
    exists = session.scalar(
        select(GateAssignment.id).where(
            GateAssignment.user_id == user_id, GateAssignment.event_id == event_id
        )
    )
    if exists is None:
        session.add(GateAssignment(user_id=user_id, event_id=event_id))
        session.commit()
    staff_changed(user_id)


def staff_changed(user_id: int) -> None:
    """Drop a gate user's cached events (assignments or the account changed)."""
    _forget_scanner(_user_key(user_id))


# --------------------------------------------------------------------------- one scan


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


def parse_scan(
    payload: Any, *, offline: bool = False, now: dt.datetime | None = None
) -> ScanRequest:
    """A scan request from JSON, with field errors for what is missing or malformed."""
    if not isinstance(payload, dict):
        raise DomainError("Send a JSON object.", code="invalid_request")
    now = now or utcnow()
    code = payload.get("code")
    if not isinstance(code, str) or not code.strip() or len(code) > 400 or _CONTROL.search(code):
        raise DomainError("Give the scanned code.", field="code")
    gate = payload.get("gate")
    if not isinstance(gate, str) or not gate.strip() or len(gate) > 100 or _CONTROL.search(gate):
        raise DomainError("Name the gate (up to 100 printable characters).", field="gate")
    direction = payload.get("direction", "in")
    if direction not in (ScanDirection.IN, ScanDirection.OUT):
        raise DomainError('The direction is "in" or "out".', field="direction")
    nonce = payload.get("nonce")
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise DomainError(
            "Send a nonce of 8 to 48 letters, digits or . _ : -, new for each scan.",
            field="nonce",
        )
    scanned_at = now
    raw_time = payload.get("scanned_at")
    if raw_time is not None:
        try:
            scanned_at = _parse_time(raw_time)
        except (TypeError, ValueError, OverflowError):
            raise DomainError("scanned_at is an ISO 8601 time.", field="scanned_at") from None
        if scanned_at > now + CLOCK_SKEW:
            raise DomainError("scanned_at is in the future.", field="scanned_at")
        if scanned_at.year < 2000:
            raise DomainError("scanned_at is too far in the past.", field="scanned_at")
    verdict = payload.get("verdict")
    if (
        offline
        and verdict is not None
        and (not isinstance(verdict, str) or verdict not in set(ScanResult))
    ):
        raise DomainError("Unknown verdict.", field="verdict")
    event_id = payload.get("event_id")
    if event_id is not None and (
        isinstance(event_id, bool) or not isinstance(event_id, int) or not 0 < event_id <= MAX_INT
    ):
        raise DomainError("event_id is an event's id.", field="event_id")
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


def _parse_time(raw: Any) -> dt.datetime:
    if not isinstance(raw, str):
        raise TypeError(raw)
    parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def iso(moment: dt.datetime) -> str:
    return moment.replace(microsecond=0).isoformat() + "Z"


class Store(Protocol):
    def recall(self, nonce: str) -> dict[str, Any] | None: ...
    def event_info(self, event_id: int) -> EventInfo | None: ...
    def is_revoked(self, event_id: int, ticket_id: int) -> bool: ...
    def ticket_details(self, event_id: int, ticket_id: int) -> dict[str, Any]: ...
    def enter(
        self, info: EventInfo, ticket_id: int, request: ScanRequest, nonce: str
    ) -> tuple[str, str | None, str | None]: ...
    def record(
        self, scanner: Scanner, request: ScanRequest, outcome: Outcome, answer: dict[str, Any]
    ) -> dict[str, Any]: ...


def evaluate(store: Store, scanner: Scanner, request: ScanRequest, now: dt.datetime) -> Outcome:
    """The verdict on one scan, in the issue's order: signature, event, window, revocation,
    entry."""
    try:
        claim, _, _ = read_claim(request.code)
    except InvalidCode:
        return Outcome(ScanResult.INVALID.value, details={"reason": "malformed"})
    gate_event = request.event_id
    if claim.event_id not in scanner.event_ids or (
        gate_event is not None and claim.event_id != gate_event
    ):
        # Not an event of this gate (nothing is looked up about other partners' events), or
        # another of this device's events than the one it works.
        return Outcome(ScanResult.WRONG_EVENT.value, claim, None)
    info = store.event_info(claim.event_id)
    if info is None:
        return Outcome(ScanResult.INVALID.value, details={"reason": "unknown_event"})
    try:
        verify_ticket(info.public_key, request.code)
    except InvalidCode:
        return Outcome(ScanResult.INVALID.value, details={"reason": "bad_signature"})
    moment = request.scanned_at if request.offline else now
    if info.cancelled or not info.opens_at <= moment <= info.closes_at:
        return Outcome(
            ScanResult.NOT_VALID_NOW.value,
            claim,
            claim.event_id,
            {"opens_at": iso(info.opens_at), "closes_at": iso(info.closes_at)},
        )
    if store.is_revoked(claim.event_id, claim.ticket_id):
        return Outcome(ScanResult.REVOKED.value, claim, claim.event_id)
    details = store.ticket_details(claim.event_id, claim.ticket_id)
    result, first_at, first_gate = store.enter(
        info, claim.ticket_id, request, scanner.scoped(request.nonce)
    )
    if result == ScanResult.ALREADY_USED:
        details["first_scan"] = {"at": first_at, "gate": first_gate}
    elif result == "not_in":
        result = ScanResult.INVALID.value
        details["reason"] = "not_checked_in"
    return Outcome(result, claim, claim.event_id, details)


def scan(session: Session, scanner: Scanner, request: ScanRequest) -> dict[str, Any]:
    """Answer one scan and log it. The armed Redis path first; the database otherwise."""
    store = _store_for(session)
    with _unavailable_without_database(session):
        try:
            return _scan_with(store, scanner, request)
        except (redis.ConnectionError, redis.TimeoutError):
            if isinstance(store, DbStore):
                raise
            log.error("Redis is unreachable: validating from the database")
            return _scan_with(DbStore(session), scanner, request)


def _scan_with(store: Store, scanner: Scanner, request: ScanRequest) -> dict[str, Any]:
    answer = store.recall(scanner.scoped(request.nonce))
    if answer is not None:
        return answer
    outcome = evaluate(store, scanner, request, utcnow())
    outcome.log_event_id = _log_event(scanner, request, outcome)
    answer = outcome.answer()
    if request.offline:
        answer["conflict"] = bool(
            request.device_verdict == ScanResult.VALID and outcome.result == ScanResult.ALREADY_USED
        )
    return store.record(scanner, request, outcome, answer)


def _log_event(scanner: Scanner, request: ScanRequest, outcome: Outcome) -> int | None:
    """Every scan is logged under one of the scanner's events, so its partner sees it: the
    ticket's when it is one of them, else the one the gate says it works, else its first."""
    claimed = outcome.claim.event_id if outcome.claim is not None else None
    for candidate in (request.event_id, claimed):
        if candidate is not None and candidate in scanner.event_ids:
            return candidate
    return min(scanner.event_ids) if scanner.event_ids else None


def record_offline_scans(session: Session, scanner: Scanner, payload: Any) -> list[dict[str, Any]]:
    """Scans a device made without network, in the order they were made: the first entry of a
    ticket is admitted, a later one that the device also admitted is a conflict."""
    scans = payload.get("scans") if isinstance(payload, dict) else None
    if not isinstance(scans, list) or not scans:
        raise DomainError('Send {"scans": [...]} with at least one scan.', field="scans")
    if len(scans) > 5000:
        raise DomainError("Upload at most 5,000 scans at a time.", field="scans")
    requests = []
    for index, item in enumerate(scans):
        try:
            requests.append(parse_scan(item, offline=True))
        except DomainError as exc:
            raise DomainError(
                f"Scan {index + 1}: {exc.message}", field=f"scans[{index}].{exc.field}"
            ) from exc
    requests.sort(key=lambda r: r.scanned_at)
    results = []
    for request in requests:
        answer = scan(session, scanner, request)
        results.append(
            {
                "nonce": request.nonce,
                "result": answer["result"],
                "conflict": answer.get("conflict", False),
            }
        )
    return results


def _store_for(session: Session) -> Store:
    """Redis when configured (an event is armed on its first scan while the database is
    there), the database otherwise."""
    cache = redis_client()
    if cache is None:
        return DbStore(session)
    return RedisStore(cache, session)


# --------------------------------------------------------------------------- database store


class DbStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def recall(self, nonce: str) -> dict[str, Any] | None:
        row = self.session.scalar(select(CheckIn).where(CheckIn.nonce == nonce))
        return _answer_of(self.session, row) if row is not None else None

    def event_info(self, event_id: int) -> EventInfo | None:
        return event_info_from_db(self.session, event_id)

    def is_revoked(self, event_id: int, ticket_id: int) -> bool:
        status = self.session.scalar(
            select(Ticket.status).where(Ticket.id == ticket_id, Ticket.event_id == event_id)
        )
        return status != TicketStatus.VALID

    def ticket_details(self, event_id: int, ticket_id: int) -> dict[str, Any]:
        return _ticket_details(self.session, [ticket_id]).get(ticket_id, {})

    def enter(
        self, info: EventInfo, ticket_id: int, request: ScanRequest, nonce: str
    ) -> tuple[str, str | None, str | None]:
        return enter_in_db(self.session, info, ticket_id, request)

    def record(
        self, scanner: Scanner, request: ScanRequest, outcome: Outcome, answer: dict[str, Any]
    ) -> dict[str, Any]:
        if outcome.log_event_id is not None:
            self.session.add(_log_row(scanner, request, outcome, answer, utcnow()))
        try:
            self.session.commit()
        except IntegrityError:
            # The same nonce raced us: answer what the first one answered.
            self.session.rollback()
            return self.recall(scanner.scoped(request.nonce)) or answer
        return answer


def event_info_from_db(session: Session, event_id: int) -> EventInfo | None:
    event = session.get(Event, event_id)
    if event is None or event.status == EventStatus.DRAFT:
        return None
    return event_info_of(event)


def event_info_of(event: Event) -> EventInfo:
    opens, closes = event.checkin_window()
    return EventInfo(
        event_id=event.id,
        partner_id=event.partner_id,
        public_key=event.public_key,
        opens_at=opens,
        closes_at=closes,
        allow_reentry=bool(event.allow_reentry),
        cancelled=event.status == EventStatus.CANCELLED,
    )


def enter_in_db(
    session: Session, info: EventInfo, ticket_id: int, request: ScanRequest
) -> tuple[str, str | None, str | None]:
    """Take the ticket's entry with the unique key of ``checkin_entry`` (or move it in/out)."""
    at = request.scanned_at
    if request.direction == ScanDirection.IN:
        taken = session.execute(
            pg_insert(CheckinEntry)
            .values(
                ticket_id=ticket_id,
                event_id=info.event_id,
                state="in",
                first_at=at,
                first_gate=request.gate,
                last_at=at,
            )
            .on_conflict_do_nothing()
            .returning(CheckinEntry.ticket_id)
        ).scalar()
        if taken is not None:
            return ScanResult.VALID.value, None, None
        if info.allow_reentry and _move(session, ticket_id, "out", "in", at):
            return ScanResult.VALID.value, None, None
        entry = session.get(CheckinEntry, ticket_id, populate_existing=True)
        return ScanResult.ALREADY_USED.value, iso(entry.first_at), entry.first_gate
    if _move(session, ticket_id, "in", "out", at):
        return ScanResult.VALID.value, None, None
    return "not_in", None, None


def _move(session: Session, ticket_id: int, old: str, new: str, at: dt.datetime) -> bool:
    moved = session.execute(
        update(CheckinEntry)
        .where(CheckinEntry.ticket_id == ticket_id, CheckinEntry.state == old)
        .values(state=new, last_at=at)
        .returning(CheckinEntry.ticket_id)
    ).scalar()
    return moved is not None


def _ticket_details(session: Session, ticket_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    rows = session.scalars(
        select(Ticket)
        .where(Ticket.id.in_(list(ticket_ids)))
        .options(joinedload(Ticket.section), joinedload(Ticket.spot))
    )
    return {
        t.id: {"section": t.section.name, "seat": t.seat_label, "holder_name": t.holder_name}
        for t in rows
    }


def _log_row(
    scanner: Scanner,
    request: ScanRequest,
    outcome: Outcome,
    answer: dict[str, Any],
    recorded_at: dt.datetime,
) -> CheckIn:
    return CheckIn(
        event_id=outcome.log_event_id,
        ticket_id=outcome.ticket_id,
        gate=request.gate,
        direction=request.direction,
        result=outcome.result,
        nonce=scanner.scoped(request.nonce),
        scanned_at=request.scanned_at,
        recorded_at=recorded_at,
        device_id=scanner.device_id,
        user_id=scanner.user_id,
        offline=request.offline,
        device_verdict=request.device_verdict,
        conflict=bool(answer.get("conflict")),
    )


def _answer_of(session: Session, row: CheckIn) -> dict[str, Any]:
    """The answer a logged scan got, rebuilt for a retry with the same nonce."""
    answer: dict[str, Any] = {"result": row.result}
    if row.ticket_id is not None:
        answer["ticket_id"] = row.ticket_id
        answer["event_id"] = row.event_id
        answer.update(_ticket_details(session, [row.ticket_id]).get(row.ticket_id, {}))
    if row.result == ScanResult.ALREADY_USED and row.ticket_id is not None:
        entry = session.get(CheckinEntry, row.ticket_id)
        if entry is not None:
            answer["first_scan"] = {"at": iso(entry.first_at), "gate": entry.first_gate}
    if row.offline:
        answer["conflict"] = row.conflict
    return answer


# --------------------------------------------------------------------------- Redis store

# The entry of a ticket, in one hash per event: "<in|out>|<first time>|<last nonce>|<first gate>".
# ARGV: ticket id, direction, time, gate, re-entry allowed ("1"/"0"), scoped nonce. The scan that
# made the last change answers "valid" again if it is retried while its first answer is in flight.
_ENTER = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local state, at, last, gate = string.match(cur, '^(%a+)|([^|]*)|([^|]*)|(.*)$')
  if last == ARGV[6] then
    return 'valid'
  end
  if ARGV[2] == 'in' then
    if state == 'out' and ARGV[5] == '1' then
      redis.call('HSET', KEYS[1], ARGV[1], 'in|' .. at .. '|' .. ARGV[6] .. '|' .. gate)
      return 'valid'
    end
    return 'already_used|' .. at .. '|' .. gate
  end
  if state == 'in' then
    redis.call('HSET', KEYS[1], ARGV[1], 'out|' .. at .. '|' .. ARGV[6] .. '|' .. gate)
    return 'valid'
  end
  return 'not_in'
end
if ARGV[2] == 'in' then
  redis.call('HSET', KEYS[1], ARGV[1], 'in|' .. ARGV[3] .. '|' .. ARGV[6] .. '|' .. ARGV[4])
  return 'valid'
end
return 'not_in'
"""

# Keep the answer under its nonce unless one is there already; log the scan only then.
_RECORD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3]) then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  return false
end
return redis.call('GET', KEYS[1])
"""


def _event_key(event_id: int) -> str:
    return f"ck:ev:{event_id}"


def _entries_key(event_id: int) -> str:
    return f"ck:en:{event_id}"


def _revoked_key(event_id: int) -> str:
    return f"ck:rv:{event_id}"


def _tickets_key(event_id: int) -> str:
    return f"ck:tk:{event_id}"


def _nonce_key(nonce: str) -> str:
    return f"ck:n:{nonce}"


class RedisStore:
    """Validation from Redis alone for armed events; an event not armed yet is armed from the
    database on its first scan."""

    def __init__(self, client: redis.Redis, session: Session) -> None:
        self.client = client
        self.session = session
        self._enter = _script(client, _ENTER)
        self._record = _script(client, _RECORD)

    def recall(self, nonce: str) -> dict[str, Any] | None:
        raw = self.client.get(_nonce_key(nonce))
        return json.loads(raw) if raw else None

    def event_info(self, event_id: int) -> EventInfo | None:
        raw = self.client.hgetall(_event_key(event_id))
        if not raw:
            try:
                if not arm_event(self.session, event_id):
                    return None
            except OperationalError as exc:
                log.warning("event %s is not armed and the database is unreachable", event_id)
                self.session.rollback()
                raise Unavailable(UNREACHABLE) from exc
            raw = self.client.hgetall(_event_key(event_id))
        return EventInfo(
            event_id=event_id,
            partner_id=int(raw["partner_id"]),
            public_key=raw["public_key"],
            opens_at=_parse_time(raw["opens_at"]),
            closes_at=_parse_time(raw["closes_at"]),
            allow_reentry=raw["allow_reentry"] == "1",
            cancelled=raw.get("cancelled") == "1",
        )

    def is_revoked(self, event_id: int, ticket_id: int) -> bool:
        return bool(self.client.sismember(_revoked_key(event_id), ticket_id))

    def ticket_details(self, event_id: int, ticket_id: int) -> dict[str, Any]:
        raw = self.client.hget(_tickets_key(event_id), ticket_id)
        return json.loads(raw) if raw else {}

    def enter(
        self, info: EventInfo, ticket_id: int, request: ScanRequest, nonce: str
    ) -> tuple[str, str | None, str | None]:
        answer = self._enter(
            keys=[_entries_key(info.event_id)],
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
        self, scanner: Scanner, request: ScanRequest, outcome: Outcome, answer: dict[str, Any]
    ) -> dict[str, Any]:
        entry = {
            "event_id": outcome.log_event_id,
            "ticket_id": outcome.ticket_id,
            "gate": request.gate,
            "direction": request.direction,
            "result": outcome.result,
            "nonce": scanner.scoped(request.nonce),
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
            keys=[_nonce_key(scanner.scoped(request.nonce)), LOG_KEY],
            args=[json.dumps(answer), json.dumps(entry), NONCE_TTL_SECONDS],
        )
        return json.loads(earlier) if earlier else answer


def _entry_state(outcome: Outcome, request: ScanRequest) -> str | None:
    """What an admitted scan did to the ticket's entry, for the database copy."""
    if outcome.result != ScanResult.VALID:
        return None
    return "in" if request.direction == ScanDirection.IN else "out"


# --------------------------------------------------------------------------- arming, manifest


def arm_event(session: Session, event_id: int, now: dt.datetime | None = None) -> bool:
    """Copy what validation needs into Redis: the public key and window, revoked tickets, the
    entries so far, ticket details and the credentials of the event's gate devices and staff.
    Returns False for an event that cannot be scanned (unknown or draft)."""
    cache = redis_client()
    if cache is None:
        raise DomainError("Arming needs Redis (REDIS_URL).", code="no_redis")
    info = event_info_from_db(session, event_id)
    if info is None:
        return False
    now = now or utcnow()
    expire_at = info.closes_at + dt.timedelta(days=2)
    ttl = max(3600, int((expire_at - now).total_seconds()))
    revoked = session.scalars(
        select(Ticket.id).where(
            Ticket.event_id == event_id,
            Ticket.status.in_([TicketStatus.REVOKED, TicketStatus.VOID]),
        )
    ).all()
    entries = session.scalars(select(CheckinEntry).where(CheckinEntry.event_id == event_id)).all()
    valid = session.scalars(
        select(Ticket.id).where(Ticket.event_id == event_id, Ticket.status == TicketStatus.VALID)
    ).all()
    details = _ticket_details(session, valid) if valid else {}
    pipe = cache.pipeline()
    pipe.hset(
        _event_key(event_id),
        mapping={"partner_id": info.partner_id, "public_key": info.public_key, **_doors(info)},
    )
    pipe.expire(_event_key(event_id), ttl)
    # Revocations are never undone: add, never replace (a refund may commit while arming).
    if revoked:
        pipe.sadd(_revoked_key(event_id), *revoked)
    pipe.expire(_revoked_key(event_id), ttl)  # also those a refund added before arming
    for entry in entries:
        # Redis may know newer scans than the database (the log is not flushed yet): keep them.
        pipe.hsetnx(
            _entries_key(event_id),
            entry.ticket_id,
            f"{entry.state}|{iso(entry.first_at)}||{entry.first_gate}",
        )
    pipe.expire(_entries_key(event_id), ttl)
    if details:
        pipe.hset(_tickets_key(event_id), mapping={k: json.dumps(v) for k, v in details.items()})
        pipe.expire(_tickets_key(event_id), ttl)
    pipe.execute()
    _cache_credentials(session, event_id, ttl)
    event = session.get(Event, event_id)
    event.armed_at = now
    session.commit()
    return True


def _doors(info: EventInfo) -> dict[str, str]:
    """What of an armed event's hash can change after arming: its window, re-entry rule and
    whether it is cancelled."""
    return {
        "opens_at": iso(info.opens_at),
        "closes_at": iso(info.closes_at),
        "allow_reentry": "1" if info.allow_reentry else "0",
        "cancelled": "1" if info.cancelled else "0",
    }


def _cache_credentials(session: Session, event_id: int, ttl: int) -> None:
    devices = session.scalars(
        select(GateDevice)
        .join(GateDevice.events)
        .where(Event.id == event_id)
        .options(joinedload(GateDevice.events))
    ).unique()
    for device in devices:
        if device.revoked_at is not None:
            _refuse_device(device.token_hash)
            continue
        scanner = Scanner(
            partner_id=device.partner_id,
            event_ids=frozenset(e.id for e in device.events),
            device_id=device.id,
        )
        _cache_scanner(_device_key(device.token_hash), scanner, ttl=DEVICE_CACHE_SECONDS)
    user_ids = session.scalars(
        select(GateAssignment.user_id).where(GateAssignment.event_id == event_id)
    ).all()
    for user_id in user_ids:
        try:
            _cache_scanner(_user_key(user_id), staff_scanner(session, user_id), ttl=ttl)
        except NotAuthorized:
            _forget_scanner(_user_key(user_id))


def arm_due_events(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Arm every published event whose check-in opens within ``CHECKIN_ARM_AHEAD_HOURS`` and has
    not closed; re-arming refreshes what changed in the database. An event armed in the last
    days is refreshed whatever it became (cancelled, its doors moved or closed early), so the
    gates never keep an old window or miss a cancellation that Redis did not hear of."""
    now = now or utcnow()
    ahead = dt.timedelta(hours=current_app.config["CHECKIN_ARM_AHEAD_HOURS"])
    due = and_(
        Event.status == EventStatus.PUBLISHED,
        Event.starts_at <= now + ahead + dt.timedelta(days=1),
        Event.starts_at >= now - dt.timedelta(days=3),
    )
    armed_since = now - dt.timedelta(days=3)
    candidates = session.scalars(select(Event).where(or_(due, Event.armed_at >= armed_since)))
    armed = []
    for event in candidates.all():
        opens, closes = event.checkin_window()
        in_window = event.status == EventStatus.PUBLISHED and opens - ahead <= now <= closes
        was_armed = event.armed_at is not None and event.armed_at >= armed_since
        if (in_window or was_armed) and arm_event(session, event.id, now):
            armed.append(event.id)
    return armed


# What the gates hold of an event, refreshed in Redis when one of these changes.
_GATE_FIELDS = frozenset(
    {"status", "starts_at", "ends_at", "checkin_opens_at", "checkin_closes_at", "allow_reentry"}
)


@sa_event.listens_for(Session, "after_flush")
def _note_gate_changes(session: Session, _context: Any) -> None:
    """Events whose doors, re-entry or status changed, and users whose account or roles
    changed: their cached gate state is refreshed once the transaction commits."""
    for row in (*session.dirty, *session.deleted):
        state = sa_inspect(row)
        if isinstance(row, Event) and state.persistent:
            if any(state.attrs[key].history.has_changes() for key in _GATE_FIELDS):
                fields = _doors(event_info_of(row))
                after_commit(session, functools.partial(refresh_armed_event, row.id, fields))
        elif isinstance(row, PartnerUser):
            history = [state.attrs[key].history for key in ("active", "roles", "partner_id")]
            if row in session.deleted or any(h.has_changes() for h in history):
                after_commit(session, functools.partial(staff_changed, row.id))


def refresh_armed_event(event_id: int, fields: dict[str, str]) -> None:
    """Tell an armed event's gates at once of its new doors, re-entry rule or cancellation (an
    event not armed reads them when it is)."""
    cache = redis_client()
    if cache is None:
        return
    try:
        if cache.exists(_event_key(event_id)):
            cache.hset(_event_key(event_id), mapping=fields)
    except redis.RedisError:
        log.error("could not refresh armed event %s in Redis; the next arming run will", event_id)


def note_revoked(event_id: int, ticket_ids: Iterable[int]) -> None:
    """Tell an armed event's gates at once that these tickets no longer admit anyone."""
    cache = redis_client()
    ids = list(ticket_ids)
    if cache is None or not ids:
        return
    try:
        # Added whether the event is armed or not: arming may have read the revoked tickets
        # before this refund committed, and would never learn of it.
        ttl = cache.ttl(_event_key(event_id))
        pipe = cache.pipeline()
        pipe.sadd(_revoked_key(event_id), *ids)
        pipe.expire(_revoked_key(event_id), ttl if ttl > 0 else UNARMED_REVOCATIONS_SECONDS)
        pipe.execute()
    except redis.RedisError:
        log.error("could not push revocations to Redis; re-arm event %s", event_id)


def note_revoked_after_commit(session: Session, event_id: int, ticket_ids: Iterable[int]) -> None:
    """``note_revoked`` once the caller's transaction commits (nothing if it rolls back)."""
    ids = list(ticket_ids)
    after_commit(session, lambda: note_revoked(event_id, ids))


def scannable_events(session: Session, scanner: Scanner) -> list[dict[str, Any]]:
    if not scanner.event_ids:
        return []
    events = session.scalars(
        select(Event)
        .where(Event.id.in_(scanner.event_ids), Event.status != EventStatus.DRAFT)
        .order_by(Event.starts_at)
    ).all()
    return [
        {
            "id": e.id,
            "name": e.name,
            "venue": e.venue,
            "starts_at": iso(e.starts_at),
            "armed": e.armed_at is not None,
        }
        for e in events
    ]


def manifest(session: Session, scanner: Scanner, event_id: int) -> dict[str, Any]:
    """What an offline gate needs: the public key, the window, revoked tickets and the entries
    so far (from Redis when armed, which stays current without the database)."""
    if event_id not in scanner.event_ids:
        raise NotFound("Event not found.")
    cache = redis_client()
    with _unavailable_without_database(session):
        if cache is None:
            return _manifest_from_db(session, event_id)
        try:
            return _manifest_from_redis(session, cache, event_id)
        except (redis.ConnectionError, redis.TimeoutError):
            log.error("Redis is unreachable: the manifest comes from the database")
            return _manifest_from_db(session, event_id)


def _manifest_from_redis(session: Session, cache: redis.Redis, event_id: int) -> dict[str, Any]:
    info = RedisStore(cache, session).event_info(event_id)
    if info is None:
        raise NotFound("Event not found.")
    revoked = sorted(int(t) for t in cache.smembers(_revoked_key(event_id)))
    entries = [
        _entry_json(int(ticket), raw)
        for ticket, raw in cache.hgetall(_entries_key(event_id)).items()
    ]
    return _manifest_json(session, info, revoked, entries)


def _manifest_from_db(session: Session, event_id: int) -> dict[str, Any]:
    info = event_info_from_db(session, event_id)
    if info is None:
        raise NotFound("Event not found.")
    revoked = list(
        session.scalars(
            select(Ticket.id).where(
                Ticket.event_id == event_id,
                Ticket.status.in_([TicketStatus.REVOKED, TicketStatus.VOID]),
            )
        )
    )
    entries = [
        {
            "ticket_id": e.ticket_id,
            "state": e.state,
            "at": iso(e.first_at),
            "gate": e.first_gate,
        }
        for e in session.scalars(select(CheckinEntry).where(CheckinEntry.event_id == event_id))
    ]
    return _manifest_json(session, info, revoked, entries)


def _manifest_json(
    session: Session, info: EventInfo, revoked: list[int], entries: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "event_id": info.event_id,
        "name": session_safe_name(session, info.event_id),
        "public_key": info.public_key,
        "opens_at": iso(info.opens_at),
        "closes_at": iso(info.closes_at),
        "allow_reentry": info.allow_reentry,
        "cancelled": info.cancelled,
        "revoked": revoked,
        "entries": sorted(entries, key=lambda e: e["ticket_id"]),
        "generated_at": iso(utcnow()),
    }


def session_safe_name(session: Session, event_id: int) -> str | None:
    """The event's name, or None when the database cannot be reached (the gate still works)."""
    try:
        return session.scalar(select(Event.name).where(Event.id == event_id))
    except SQLAlchemyError:
        session.rollback()
        return None


def _entry_json(ticket_id: int, raw: str) -> dict[str, Any]:
    state, first_at, _, gate = raw.split("|", 3)
    return {"ticket_id": ticket_id, "state": state, "at": first_at, "gate": gate}


# --------------------------------------------------------------------------- the scan log


def flush_scan_log(session: Session, batch: int = 1000) -> int:
    """Write the scans queued in Redis to the database, oldest first, in batches; returns how
    many were written. Idempotent by nonce: a batch written but not trimmed (a crash) is
    skipped the next time. Leaves the queue alone while the database is unreachable."""
    cache = redis_client()
    if cache is None:
        return 0
    # One flusher at a time: two would trim each other's batches.
    lock = cache.lock("ck:log:flushing", timeout=300, blocking=False)
    if not lock.acquire():
        return 0
    try:
        return _flush(session, cache, batch)
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            log.warning("the scan log flush outlived its lock")


def _flush(session: Session, cache: redis.Redis, batch: int) -> int:
    written = 0
    while True:
        raw = cache.lrange(LOG_KEY, 0, batch - 1)
        if not raw:
            return written
        records = [json.loads(item) for item in raw]
        try:
            _write_scans(session, records)
            session.commit()
        except (IntegrityError, DataError):
            # One record the database refuses must not hold back every later scan.
            session.rollback()
            _write_one_by_one(session, cache, records)
        except SQLAlchemyError:
            session.rollback()
            log.warning("scan log not flushed: the database is unreachable", exc_info=True)
            return written
        cache.ltrim(LOG_KEY, len(raw), -1)
        written += len(raw)


DEAD_LETTER_KEY = "ck:log:refused"


def _write_one_by_one(session: Session, cache: redis.Redis, records: list[dict[str, Any]]) -> None:
    """Write a batch record by record; one the database refuses goes to a dead-letter list
    (kept for inspection) instead of blocking the queue."""
    for record in records:
        try:
            _write_scans(session, [record])
            session.commit()
        except (IntegrityError, DataError):
            session.rollback()
            log.error("scan log record refused by the database", extra={"nonce": record["nonce"]})
            cache.rpush(DEAD_LETTER_KEY, json.dumps(record))


def _write_scans(session: Session, records: list[dict[str, Any]]) -> None:
    rows = [
        {
            "event_id": r["event_id"],
            "ticket_id": r["ticket_id"],
            "gate": r["gate"],
            "direction": r["direction"],
            "result": r["result"],
            "nonce": r["nonce"],
            "scanned_at": _parse_time(r["scanned_at"]),
            "recorded_at": _parse_time(r["recorded_at"]),
            "device_id": r["device_id"],
            "user_id": r["user_id"],
            "offline": r["offline"],
            "device_verdict": r["device_verdict"],
            "conflict": r["conflict"],
        }
        for r in records
        if r["event_id"] is not None
    ]
    for record in records:
        if record["event_id"] is None:  # a scanner left with no event to log it under
            log.warning("scan dropped from the log", extra={"nonce": record["nonce"]})
    if rows:
        session.execute(pg_insert(CheckIn).on_conflict_do_nothing(), rows)
    for record in records:
        state = record.get("entry_state")
        if state is None:
            continue
        at = _parse_time(record["scanned_at"])
        session.execute(
            pg_insert(CheckinEntry)
            .values(
                ticket_id=record["ticket_id"],
                event_id=record["event_id"],
                state=state,
                first_at=at,
                first_gate=record["gate"],
                last_at=at,
            )
            .on_conflict_do_update(
                index_elements=[CheckinEntry.ticket_id],
                set_={"state": state, "last_at": at},
                where=CheckinEntry.last_at <= at,
            )
        )


def entries_by_section_and_gate(session: Session, actor: Actor, event_id: int) -> dict[str, Any]:
    """Live figures for the partner's dashboard: admitted tickets by section and by gate,
    rejected scans by result, offline conflicts."""
    event = get_owned(session, Event, event_id, actor)
    from app.models import EventSection

    by_section = session.execute(
        select(EventSection.name, func.count(CheckinEntry.ticket_id))
        .join(Ticket, Ticket.section_id == EventSection.id)
        .join(CheckinEntry, CheckinEntry.ticket_id == Ticket.id)
        .where(CheckinEntry.event_id == event.id)
        .group_by(EventSection.name)
        .order_by(EventSection.name)
    ).all()
    sold_by_section = dict(
        session.execute(
            select(EventSection.name, func.count(Ticket.id))
            .join(Ticket, Ticket.section_id == EventSection.id)
            .where(Ticket.event_id == event.id, Ticket.status == TicketStatus.VALID)
            .group_by(EventSection.name)
        ).all()
    )
    by_gate = session.execute(
        select(CheckinEntry.first_gate, func.count())
        .where(CheckinEntry.event_id == event.id)
        .group_by(CheckinEntry.first_gate)
        .order_by(CheckinEntry.first_gate)
    ).all()
    by_result = session.execute(
        select(CheckIn.result, func.count())
        .where(CheckIn.event_id == event.id)
        .group_by(CheckIn.result)
        .order_by(CheckIn.result)
    ).all()
    conflicts = session.scalar(
        select(func.count()).where(CheckIn.event_id == event.id, CheckIn.conflict.is_(True))
    )
    return {
        "event": event,
        "sections": [
            {"name": name, "entered": entered, "tickets": sold_by_section.get(name, 0)}
            for name, entered in by_section
        ]
        + [
            {"name": name, "entered": 0, "tickets": sold}
            for name, sold in sorted(sold_by_section.items())
            if name not in {n for n, _ in by_section}
        ],
        "gates": [{"gate": gate, "entered": n} for gate, n in by_gate],
        "results": [{"result": result, "scans": n} for result, n in by_result],
        "conflicts": conflicts or 0,
        "entered": sum(n for _, n in by_gate),
    }


# --------------------------------------------------------------------------- the fast path

# The whole armed-event scan of a device in one Redis call (the rules of ``evaluate`` and of the
# Redis store, in the same order), for the WSGI fast path: no Flask, one round trip.
# KEYS: device, revoked devices, event, revoked tickets, ticket details, entries, log
# ARGV: verdict, event id, ticket id, label, direction, scanned_at (iso Z), gate, now (iso Z),
#       gate's event id or '', scanned_at (log), recorded_at (log), nonce ttl, nonce, token hash
_FAST_SCAN = r"""
-- KEYS: device, revoked devices, event, revoked tickets, ticket details, entries, log
-- ARGV: verdict, event id, ticket id, label, direction, scanned_at (iso Z), gate, now (iso Z),
--       gate's event id or '', scanned_at (log), recorded_at (log), nonce ttl, nonce
local dev = redis.call('GET', KEYS[1])
if not dev or redis.call('SISMEMBER', KEYS[2], ARGV[14]) == 1 then return {'noauth'} end
local scanner = cjson.decode(dev)
local owner = scanner.device_id and ('d' .. scanner.device_id) or ('u' .. scanner.user_id)
local nonce = owner .. ':' .. ARGV[13]
local nonce_key = 'ck:n:' .. nonce
local prev = redis.call('GET', nonce_key)
if prev then return {'old', prev} end
local verdict, ev, ticket, label = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local direction, scanned_iso, gate, now = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local gate_event = tonumber(ARGV[9])
local member, gate_member, min_ev = false, false, nil
for _, id in ipairs(scanner.event_ids) do
  if id == ev then member = true end
  if gate_event and id == gate_event then gate_member = true end
  if min_ev == nil or id < min_ev then min_ev = id end
end
local answer = {}
local outcome_event, entry_state = nil, cjson.null
if verdict == 'malformed' then
  answer = {result = 'invalid', reason = 'malformed'}
elseif not member or (gate_event and gate_event ~= ev) then
  answer = {result = 'wrong_event'}
elseif verdict ~= 'ok' then
  answer = {result = 'invalid', reason = verdict}
else
  outcome_event = ev
  local result
  local info = redis.call('HMGET', KEYS[3], 'opens_at', 'closes_at', 'cancelled', 'allow_reentry')
  if info[3] == '1' or now < info[1] or now > info[2] then
    result = 'not_valid_now'
    answer.opens_at = info[1]; answer.closes_at = info[2]
  elseif redis.call('SISMEMBER', KEYS[4], ticket) == 1 then
    result = 'revoked'
  else
    local details = redis.call('HGET', KEYS[5], ticket)
    if details then for k, v in pairs(cjson.decode(details)) do answer[k] = v end end
    local cur = redis.call('HGET', KEYS[6], ticket)
    if cur then
      local state, at, last, first_gate = string.match(cur, '^(%a+)|([^|]*)|([^|]*)|(.*)$')
      if last == nonce then
        result = 'valid'
      elseif direction == 'in' then
        if state == 'out' and info[4] == '1' then
          redis.call('HSET', KEYS[6], ticket, 'in|' .. at .. '|' .. nonce .. '|' .. first_gate)
          result = 'valid'
        else
          result = 'already_used'; answer.first_scan = {at = at, gate = first_gate}
        end
      elseif state == 'in' then
        redis.call('HSET', KEYS[6], ticket, 'out|' .. at .. '|' .. nonce .. '|' .. first_gate)
        result = 'valid'
      else
        result = 'invalid'; answer.reason = 'not_checked_in'
      end
    elseif direction == 'in' then
      redis.call('HSET', KEYS[6], ticket, 'in|' .. scanned_iso .. '|' .. nonce .. '|' .. gate)
      result = 'valid'
    else
      result = 'invalid'; answer.reason = 'not_checked_in'
    end
    if result == 'valid' then entry_state = direction end
  end
  answer.result = result
  answer.ticket_id = ticket; answer.event_id = ev
  if answer.seat == nil then answer.seat = label end
end
local log_event = cjson.null
if gate_member then
  log_event = gate_event
elseif member then
  log_event = ev
elseif min_ev then
  log_event = min_ev
end
local log_ticket = cjson.null
if outcome_event and outcome_event == log_event then log_ticket = ticket end
local body = cjson.encode(answer)
redis.call('SET', nonce_key, body, 'EX', ARGV[12])
redis.call('RPUSH', KEYS[7], cjson.encode({
  event_id = log_event, ticket_id = log_ticket, gate = gate, direction = direction,
  result = answer.result, nonce = nonce, scanned_at = ARGV[10], recorded_at = ARGV[11],
  device_id = scanner.device_id or cjson.null, user_id = scanner.user_id or cjson.null,
  offline = false, device_verdict = cjson.null, conflict = false, entry_state = entry_state}))
return {'new', body}
"""

_FAST_KEYS: dict[int, tuple[Ed25519PublicKey, float]] = {}
_FAST_KEY_SECONDS = 5.0


def forget_fast_keys() -> None:
    """Drop the cached public keys (tests reuse event ids with new keys)."""
    _FAST_KEYS.clear()


def _fast_public_key(client: redis.Redis, event_id: int) -> Ed25519PublicKey | None:
    """An armed event's public key (keys never change: cached a few seconds per process, so a
    disarmed event is noticed soon)."""
    cached = _FAST_KEYS.get(event_id)
    now = time.monotonic()
    if cached and now - cached[1] < _FAST_KEY_SECONDS:
        return cached[0]
    raw = client.hget(_event_key(event_id), "public_key")
    if raw is None:
        _FAST_KEYS.pop(event_id, None)
        return None
    key = Ed25519PublicKey.from_public_bytes(unb64(raw))
    _FAST_KEYS[event_id] = (key, now)
    return key


def fast_scan(client: redis.Redis, token: str, body: bytes) -> bytes | None:
    """Answer a device's scan of an armed event in one Redis round trip, or None when the full
    path must answer (a staff login, a malformed request, an unknown device, an event not armed
    yet)."""
    if not token or token.count(".") == 2:
        return None
    try:
        request = parse_scan(json.loads(body))
    except (ValueError, DomainError):
        return None
    event_id = ticket_id = 0
    label = ""
    try:
        claim, signed, signature = read_claim(request.code)
    except InvalidCode:
        verdict = "malformed"
    else:
        key = _fast_public_key(client, claim.event_id)
        if key is None:
            return None
        event_id, ticket_id, label = claim.event_id, claim.ticket_id, claim.label
        try:
            key.verify(signature, signed)
            verdict = "ok"
        except InvalidSignature:
            verdict = "bad_signature"
    now = utcnow()
    digest = token_hash(token)
    script = _script(client, _FAST_SCAN)
    reply = script(
        keys=[
            _device_key(digest), REVOKED_DEVICES_KEY, _event_key(event_id),
            _revoked_key(event_id), _tickets_key(event_id), _entries_key(event_id), LOG_KEY,
        ],
        args=[
            verdict, event_id, ticket_id, label, request.direction, iso(request.scanned_at),
            request.gate, iso(now), request.event_id or "", request.scanned_at.isoformat(),
            now.isoformat(), NONCE_TTL_SECONDS, request.nonce, digest,
        ],
    )  # fmt: skip
    if reply[0] == "noauth":  # not cached, or revoked: the full path decides
        return None
    return reply[1].encode()  # "new" (this scan's answer) or "old" (a retry's first answer)
