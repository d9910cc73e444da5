"""One scan, from request to logged answer (ARCHITECTURE.md, "The scan path").

A scan verifies the code's Ed25519 signature with the event's public key before anything else,
then checks the gate's events, the doors (window, cancellation) and revocations, and records the
entry atomically (``evaluate``; the entry rule itself is ``rules.decide_entry``). Two stores
answer the same questions: ``RedisStore`` when Redis is configured (the event armed; the scan
written to the database before it is answered while the database is reachable, which decides
admissions then: ``scan_log.write_through``), ``DbStore`` otherwise, and while Redis is
unreachable (what it takes then is told to Redis when it answers again: ``catch_up``). A
retry with the same nonce returns the first answer and records nothing new; the nonce sent
with another scan (``rules.fingerprint``) is refused, 422 ``nonce_reused``, so a nonce that
answered "valid" never vouches for another code. Offline scans uploaded later go through the
same path in the order they were made; a ticket the device admitted that was already used is a
conflict.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Protocol

import redis
from flask import current_app
from flask_babel import gettext
from sqlalchemy.orm import Session

from app import metrics
from app.models import DomainError, ScanResult
from app.models.base import utcnow
from app.models.codes import InvalidCode, read_claim, verify_ticket
from app.services.checkin import catch_up
from app.services.checkin.db_store import DbStore
from app.services.checkin.errors import (
    NONCE_REUSED,
    NonceReused,
    unavailable_without_database,
)
from app.services.checkin.redis_keys import redis_client
from app.services.checkin.redis_store import RedisStore
from app.services.checkin.rules import (
    NOT_IN,
    EventInfo,
    FirstAnswer,
    Outcome,
    ScanRequest,
    doors_open,
    fingerprint,
    iso,
    parse_scan,
)
from app.services.checkin.scan_log import settle_after_fallback
from app.services.checkin.scanners import Scanner

log = logging.getLogger(__name__)


class Store(Protocol):
    def recall(self, nonce: str) -> FirstAnswer | None: ...
    def event_info(self, event_id: int) -> EventInfo | None: ...
    def is_revoked(self, event_id: int, ticket_id: int) -> bool: ...
    def ticket_details(self, event_id: int, ticket_id: int) -> dict[str, Any]: ...
    def enter(
        self, info: EventInfo, ticket_id: int, request: ScanRequest, nonce: str
    ) -> tuple[str, str | None, str | None]: ...
    def record(
        self,
        scanner: Scanner,
        request: ScanRequest,
        fingerprint: str,
        outcome: Outcome,
        answer: dict[str, Any],
    ) -> FirstAnswer: ...


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
    if not doors_open(info, request.scanned_at if request.offline else now):
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
    elif result == NOT_IN:
        result = ScanResult.INVALID.value
        details["reason"] = "not_checked_in"
    return Outcome(result, claim, claim.event_id, details)


def scan(session: Session, scanner: Scanner, request: ScanRequest) -> dict[str, Any]:
    """Answer one scan and log it. The armed Redis path first (once Redis has the entries this
    node took from the database while Redis was unreachable); the database otherwise, marking
    what it changes for Redis."""
    store = _store_for(session)
    with unavailable_without_database(session):
        try:
            if isinstance(store, RedisStore) and catch_up.owes(current_app):
                settle_after_fallback(session)
            return _scan_with(store, scanner, request)
        except (redis.ConnectionError, redis.TimeoutError):
            if isinstance(store, DbStore):
                raise
            log.error("Redis is unreachable: validating from the database")
            try:
                return _scan_with(DbStore(session, redis_pending=True), scanner, request)
            finally:
                catch_up.note_fallback()


def _scan_with(store: Store, scanner: Scanner, request: ScanRequest) -> dict[str, Any]:
    wanted = fingerprint(request)
    first = store.recall(scanner.scoped(request.nonce))
    if first is not None:
        return _replay(first, wanted)
    outcome = evaluate(store, scanner, request, utcnow())
    outcome.log_event_id = _log_event(scanner, request, outcome)
    answer = outcome.answer()
    if request.offline:
        answer["conflict"] = bool(
            request.device_verdict == ScanResult.VALID and outcome.result == ScanResult.ALREADY_USED
        )
    # The first answer under the nonce: this one's (the database may have overruled Redis's),
    # or a racing request's.
    first = store.record(scanner, request, wanted, outcome, answer)
    if first.mine:  # counted once, by the request whose answer stands
        metrics.count_scan(first.answer["result"], _path_of(store, request))
    return _replay(first, wanted)


def _path_of(store: Store, request: ScanRequest) -> str:
    if request.offline:
        return "offline"
    return "database" if isinstance(store, DbStore) else "redis"


def _replay(first: FirstAnswer, wanted: str) -> dict[str, Any]:
    """The nonce's first answer for a retry of the same scan; NonceReused for another scan."""
    if first.fingerprint is not None and first.fingerprint != wanted:
        raise NonceReused(gettext(NONCE_REUSED), field="nonce")
    return first.answer


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
        raise DomainError(gettext('Send {"scans": [...]} with at least one scan.'), field="scans")
    if len(scans) > 5000:
        raise DomainError(gettext("Upload at most 5,000 scans at a time."), field="scans")
    requests = []
    for index, item in enumerate(scans):
        try:
            requests.append((index, parse_scan(item, offline=True)))
        except DomainError as exc:
            raise _in_upload(exc, index) from exc
    requests.sort(key=lambda pair: pair[1].scanned_at)
    results = []
    for index, request in requests:
        try:
            answer = scan(session, scanner, request)
        except NonceReused as exc:  # those before it are recorded: a retry replays them
            raise _in_upload(exc, index) from exc
        results.append(
            {
                "nonce": request.nonce,
                "result": answer["result"],
                "conflict": answer.get("conflict", False),
            }
        )
    return results


def _in_upload(error: DomainError, index: int) -> DomainError:
    """A scan's error as its upload answers it: the scan named by its place in the upload."""
    return type(error)(f"Scan {index + 1}: {error.message}", field=f"scans[{index}].{error.field}")


def _store_for(session: Session) -> Store:
    """Redis when configured (an event is armed on its first scan while the database is
    there), the database otherwise."""
    cache = redis_client()
    if cache is None:
        return DbStore(session)
    return RedisStore(cache, session)
