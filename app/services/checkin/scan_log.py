"""A scan judged in Redis, written to the database: before it is answered (``write_through``),
and from the queue Redis keeps (``flush_scan_log``) for what could not be written then.

**Written before it is answered.** A scan judged in Redis (by the fast path's script or the
Redis store) is written to the database before its answer leaves: its row of ``checkin`` and,
when it changed the ticket's entry, ``checkin_entry``, in one transaction. The database then
arbitrates an admission: if it holds an entry Redis did not know of (one the database store
took while Redis was unreachable from this node or every node), Redis's "valid" is overruled,
the scan answers "already used" like any second scan, and Redis's entry and the nonce's answer
are corrected. So, while the database is reachable, every admission at every gate is decided
under the database's row lock and unique ticket key whatever Redis holds or lost, and no scan
exists in Redis alone: Redis may crash and come back empty without a ticket admitted twice or a
scan missing from the log. The cost is one short transaction per scan (bench/checkin.py).

**Queued for when the database cannot be written.** The script that judges a scan also queues
it in Redis (``redis_keys.LOG_KEY``), in the same atomic step. While the database is unreachable
(a write failed: this node stops trying for ``DATABASE_RETRY_SECONDS``), Redis judges alone
and the queue is the scan's only copy until the database is back; ``flush_scan_log``, a Celery
beat task every 5 seconds, writes it. The flush skips scans written already (by nonce: the
write-through, or a batch written but not trimmed), so every scan is logged once. A queued
admission the database turns out to disagree with (Redis admitted a ticket the database held:
only possible when both were down in turn) is logged as answered, flagged ``conflict`` as an
offline double entry is. So is one older than the database's entry whose ticket's next move is
another admission, with no exit between: Redis, back with its data, admitted the ticket while
a gate still falling back admitted it from the database, before Redis's scan was written there.
When that scan's answer is still to be given, its write-through then answers "already used"
(and the conflict flag goes: nobody was let in twice). A record the database refuses goes to a
dead-letter list instead of holding back every later scan. The flush then tells Redis of the
entries the database store took while Redis was unreachable (``catch_up``).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import Connection, Engine, Row, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, scoped_session

from app.models import CheckIn, CheckinEntry, Event, ScanDirection, ScanResult
from app.services.checkin import catch_up
from app.services.checkin.db_store import logged_answer
from app.services.checkin.redis_keys import (
    LOG_KEY,
    NONCE_TTL_SECONDS,
    entries_key,
    entry_value,
    nonce_key,
    nonce_value,
    redis_client,
)
from app.services.checkin.rules import FirstAnswer, decide_entry, iso, parse_time

log = logging.getLogger(__name__)

#: Scan log records the database refused, kept for inspection.
DEAD_LETTER_KEY = "ck:log:refused"
#: After a write to the database failed, scans are only queued in Redis for this long before
#: the database is tried again (one scan tries at a time), so a database that is down (or
#: hangs until the connect timeout) costs the gates nothing.
DATABASE_RETRY_SECONDS = 2.0


class _Writer:
    """Writing scans to one database: an autocommit handle on its pool, and whether to write
    now: always, until a write fails; then once per ``DATABASE_RETRY_SECONDS``, one scan at a
    time, until a write succeeds."""

    def __init__(self, engine: Engine) -> None:
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._lock = threading.Lock()
        self._retry_at: float | None = None  # None: the last write succeeded

    def allow(self) -> bool:
        if self._retry_at is None:
            return True
        with self._lock:
            now = time.monotonic()
            if self._retry_at is None or now < self._retry_at:
                return self._retry_at is None
            self._retry_at = now + DATABASE_RETRY_SECONDS  # this scan tries; the others wait
            return True

    def succeeded(self) -> None:
        self._retry_at = None

    def failed(self) -> None:
        with self._lock:
            self._retry_at = time.monotonic() + DATABASE_RETRY_SECONDS


_WRITERS: weakref.WeakKeyDictionary[Engine, _Writer] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


def _writer(engine: Engine) -> _Writer:
    writer = _WRITERS.get(engine)
    if writer is None:
        with _WRITERS_LOCK:
            writer = _WRITERS.get(engine)
            if writer is None:
                writer = _WRITERS[engine] = _Writer(engine)
    return writer


_LOG = CheckIn.__table__
_ENTRY = CheckinEntry.__table__
_LOG_COLUMNS = (
    "event_id", "ticket_id", "gate", "direction", "result", "nonce", "request_fingerprint",
    "scanned_at", "recorded_at", "device_id", "user_id", "offline", "device_verdict", "conflict",
)  # fmt: skip
_ENTRY_COLUMNS = ("ticket_id", "event_id", "state", "first_at", "first_gate", "last_at")
# Built once: a scan on the gate's path costs the compiled statements' cache lookups only.
_INSERT_LOG = (
    pg_insert(_LOG)
    .values({name: bindparam(name) for name in _LOG_COLUMNS})
    .on_conflict_do_nothing(index_elements=[_LOG.c.nonce])
    .returning(_LOG.c.id)
)
_INSERT_LOGS = pg_insert(_LOG).on_conflict_do_nothing().returning(_LOG.c.nonce)
_OVERRULE = (
    update(_LOG)
    .where(_LOG.c.id == bindparam("log_id"))
    .values(result=bindparam("new_result"), conflict=bindparam("new_conflict"))
)
_TAKE_ENTRY = (
    pg_insert(_ENTRY)
    .values({name: bindparam(name) for name in _ENTRY_COLUMNS})
    .on_conflict_do_nothing()
    .returning(_ENTRY.c.ticket_id)
)
_LEAVE = pg_insert(_ENTRY).values({name: bindparam(name) for name in _ENTRY_COLUMNS})
_LEAVE = _LEAVE.on_conflict_do_update(
    index_elements=[_ENTRY.c.ticket_id],
    set_={"state": _LEAVE.excluded.state, "last_at": _LEAVE.excluded.last_at},
    where=_ENTRY.c.last_at <= _LEAVE.excluded.last_at,
)
_LOCK_ENTRY = (
    select(_ENTRY.c.state, _ENTRY.c.first_at, _ENTRY.c.first_gate, _ENTRY.c.last_at)
    .where(_ENTRY.c.ticket_id == bindparam("ticket_id"))
    .with_for_update()
)
_REENTRY = select(Event.allow_reentry).where(Event.id == bindparam("event_id"))
# The first admission or exit of a ticket the log holds at or after a scan (not that scan).
_NEXT_MOVE = (
    select(_LOG.c.direction, _LOG.c.scanned_at)
    .where(
        _LOG.c.ticket_id == bindparam("ticket_id"),
        _LOG.c.result == ScanResult.VALID.value,
        _LOG.c.nonce != bindparam("nonce"),
        _LOG.c.scanned_at >= bindparam("at"),
    )
    .order_by(_LOG.c.scanned_at, _LOG.c.id)
    .limit(1)
)
# A first entry and its scan's row in one statement, in one round trip (autocommit): nothing
# when the ticket has an entry or the nonce a row already (then ``_write_through`` decides),
# and a unique violation undoes both when the nonce is logged meanwhile (the flush raced it).
_FIRST_ENTRY = text(
    """
    WITH taken AS (
        INSERT INTO checkin_entry (ticket_id, event_id, state, first_at, first_gate, last_at)
        SELECT CAST(:ticket_id AS INTEGER), CAST(:event_id AS INTEGER), 'in',
               CAST(:scanned_at AS TIMESTAMP), CAST(:gate AS VARCHAR),
               CAST(:scanned_at AS TIMESTAMP)
        WHERE NOT EXISTS (SELECT 1 FROM checkin WHERE nonce = CAST(:nonce AS VARCHAR))
        ON CONFLICT DO NOTHING
        RETURNING ticket_id
    )
    INSERT INTO checkin (event_id, ticket_id, gate, direction, result, nonce,
                         request_fingerprint, scanned_at, recorded_at, device_id, user_id,
                         offline, device_verdict, conflict)
    SELECT CAST(:event_id AS INTEGER), taken.ticket_id, CAST(:gate AS VARCHAR), 'in',
           CAST(:result AS VARCHAR), CAST(:nonce AS VARCHAR),
           CAST(:request_fingerprint AS VARCHAR), CAST(:scanned_at AS TIMESTAMP),
           CAST(:recorded_at AS TIMESTAMP), CAST(:device_id AS INTEGER),
           CAST(:user_id AS INTEGER), CAST(:offline AS BOOLEAN),
           CAST(:device_verdict AS VARCHAR), CAST(:conflict AS BOOLEAN)
    FROM taken
    RETURNING id
    """
)
_ENTER_AGAIN = (
    update(_ENTRY)
    .where(_ENTRY.c.ticket_id == bindparam("entry_ticket"))
    .values(state=ScanDirection.IN.value, last_at=bindparam("entry_at"))
)


@dataclass
class _Overruled:
    """The database's entry, which refuses an admission Redis granted."""

    result: str
    entry: Row[Any]  # state, first_at, first_gate


def write_through(
    database: Session | scoped_session[Session] | Engine,
    client: redis.Redis,
    record: dict[str, Any],
    answer: dict[str, Any],
    fingerprint: str,
) -> FirstAnswer:
    """Write a scan Redis just judged (its queued ``record`` and ``answer``) to the database
    (a session, whose transaction it ends, or an engine) before it is answered; returns the
    answer that stands: Redis's, or the database's when it overruled an admission or had logged
    the nonce already (Redis corrected to match). While the database cannot be written,
    Redis's answer stands and the queue keeps the scan."""
    mine = FirstAnswer(fingerprint, answer, mine=True)
    if record["event_id"] is None:
        return mine  # nothing to log it under (the flush drops it too)
    engine = database if isinstance(database, Engine) else database.get_bind()
    writer = _writer(engine)
    if not writer.allow():
        return mine
    try:
        written = _write_at_once(writer, record)
    except IntegrityError:
        written = False  # the nonce logged meanwhile, or a row refused: decided below
    except DataError:
        log.error("scan refused by the database", extra={"nonce": record["nonce"]})
        return mine  # the flush tries again and sets it aside (dead letters)
    except SQLAlchemyError:
        writer.failed()
        log.error("scan queued in Redis only: the database could not take it", exc_info=True)
        return mine
    if written:
        writer.succeeded()
        return mine
    if isinstance(database, Engine):
        with Session(database) as session:
            settled = _write(session, writer, record, answer, fingerprint)
    else:
        settled = _write(database, writer, record, answer, fingerprint)
    if settled is None:
        return mine
    first, entry = settled
    try:
        pipe = client.pipeline()
        pipe.set(
            nonce_key(record["nonce"]),
            nonce_value(first.fingerprint or "", json.dumps(first.answer)),
            ex=NONCE_TTL_SECONDS,
        )
        if entry is not None:
            pipe.hset(entries_key(record["event_id"]), record["ticket_id"], entry)
        elif record.get("entry_state"):
            pipe.hdel(entries_key(record["event_id"]), record["ticket_id"])
        pipe.execute()
    except redis.RedisError:
        # The answer given is the database's; only a retry of this very scan through Redis,
        # after Redis came back with its data, would read Redis's.
        log.error("could not correct Redis after the database overruled a scan", exc_info=True)
    return first


def _write_at_once(writer: _Writer, record: dict[str, Any]) -> bool:
    """The common cases in one statement and one round trip: a refused scan's row (nothing
    to decide), or a first entry and its row. False when the database must decide (the
    ticket has an entry, or the nonce a row)."""
    state = record.get("entry_state")
    if state is not None and state != ScanDirection.IN:
        return False
    with writer.autocommit.connect() as conn:
        if state is None:
            return conn.execute(_INSERT_LOG, _row(record)).scalar() is not None
        return conn.execute(_FIRST_ENTRY, _row(record)).scalar() is not None


def _write(
    session: Session | scoped_session[Session],
    breaker: _Writer,
    record: dict[str, Any],
    answer: dict[str, Any],
    fingerprint: str,
) -> tuple[FirstAnswer, str | None] | None:
    """``_write_through`` in its own transaction, the breaker told how it went."""
    try:
        settled = _write_through(session, record, answer, fingerprint)
    except (IntegrityError, DataError):
        session.rollback()  # the flush tries again and sets it aside (dead letters)
        log.error("scan refused by the database", extra={"nonce": record["nonce"]})
        return None
    except SQLAlchemyError:
        session.rollback()
        breaker.failed()
        log.error("scan queued in Redis only: the database could not take it", exc_info=True)
        return None
    try:
        session.commit()
        breaker.succeeded()
    except SQLAlchemyError:
        session.rollback()
        breaker.failed()
        log.error("scan queued in Redis only: its write did not commit", exc_info=True)
        # A refusal the database made stands: the entry that refuses it was committed before.
    return settled


def _write_through(
    session: Session | scoped_session[Session],
    record: dict[str, Any],
    answer: dict[str, Any],
    fingerprint: str,
) -> tuple[FirstAnswer, str | None] | None:
    """The scan's rows; None when the database agrees with Redis, else the answer that stands
    and the entry Redis should hold (None: the ticket has none)."""
    conn = session.connection()
    logged = conn.execute(_INSERT_LOG, _row(record)).scalar()
    if logged is None:
        # Logged already: the flush wrote the queued record first, or Redis lost the nonce's
        # first answer (a crash) and this is a retry of a scan the database has.
        session.rollback()
        row = session.scalar(select(CheckIn).where(CheckIn.nonce == record["nonce"]))
        if row is None:  # deleted in between: nothing to replay, nothing to write
            return None
        if (
            row.request_fingerprint == fingerprint
            and row.result != answer["result"]
            and row.recorded_at == parse_time(record["recorded_at"])
        ):
            # This very scan, written by the flush while its answer was still to be given,
            # and overruled there (a later admission from the database): it answers as the
            # database decided, so no double entry happened.
            row.conflict = bool(record["offline"] and record["device_verdict"] == ScanResult.VALID)
            row.device_verdict = record["device_verdict"]
        first = FirstAnswer(row.request_fingerprint, logged_answer(session, row))
        entry = session.get(CheckinEntry, record["ticket_id"]) if record["ticket_id"] else None
        if first.fingerprint == fingerprint and first.answer["result"] == answer["result"]:
            return None
        return first, _entry_value(entry)
    if record.get("entry_state") is None:
        return None
    overruled = _apply_entry(conn, record, fresh=True)
    if overruled is None:
        return None
    entry = overruled.entry
    corrected = {**answer, "result": overruled.result}
    corrected["first_scan"] = {"at": iso(entry.first_at), "gate": entry.first_gate}
    conflict = record["offline"] and record["device_verdict"] == ScanResult.VALID
    if conflict:  # uploaded from a device that admitted it: a double entry, reported
        corrected["conflict"] = True
    conn.execute(
        _OVERRULE, {"log_id": logged, "new_result": overruled.result, "new_conflict": conflict}
    )
    return FirstAnswer(fingerprint, corrected, mine=True), _entry_value(entry)


def _entry_value(entry: Any) -> str | None:
    """Redis's copy of an entry (a row or a ``CheckinEntry``; None: no entry)."""
    return entry_value(entry.state, iso(entry.first_at), entry.first_gate) if entry else None


def _apply_entry(
    conn: Connection,
    record: dict[str, Any],
    *,
    fresh: bool,
    queued_after: Callable[[], Iterable[dict[str, Any]]] = tuple,
) -> _Overruled | None:
    """Apply to ``checkin_entry`` what an admitted scan did to the ticket's entry in Redis.

    An ``in``: the database decides (``rules.decide_entry`` on its row, locked) and refuses it
    when it holds the ticket in (or out, without re-entry): the returned entry refuses it. A
    queued scan (not ``fresh``) older than the entry's last change is history and changes
    nothing, unless it is followed by another admission with no exit between
    (``_admitted_again``; ``queued_after``: the scans queued after it, not in the log yet). An
    ``out`` is never refused (it admits nobody): the entry goes out unless it changed later."""
    at = parse_time(record["scanned_at"])
    values = {
        "ticket_id": record["ticket_id"],
        "event_id": record["event_id"],
        "state": record["entry_state"],
        "first_at": at,
        "first_gate": record["gate"],
        "last_at": at,
    }
    if record["entry_state"] == ScanDirection.OUT:
        conn.execute(_LEAVE, values)
        return None
    if conn.execute(_TAKE_ENTRY, values).scalar() is not None:
        return None
    entry = conn.execute(_LOCK_ENTRY, {"ticket_id": record["ticket_id"]}).first()
    if entry is None:  # deleted in between (its ticket's event deleted)
        return None
    if not fresh and entry.last_at > at:
        if not _admitted_again(conn, record, at, queued_after):
            return None
        return _Overruled(ScanResult.ALREADY_USED.value, entry)
    reentry = entry.state == ScanDirection.OUT and bool(
        conn.execute(_REENTRY, {"event_id": record["event_id"]}).scalar()
    )
    decision = decide_entry(entry.state, ScanDirection.IN.value, reentry)
    if decision.result == ScanResult.VALID:
        conn.execute(_ENTER_AGAIN, {"entry_ticket": record["ticket_id"], "entry_at": at})
        return None
    return _Overruled(decision.result, entry)


def _admitted_again(
    conn: Connection,
    record: dict[str, Any],
    at: dt.datetime,
    queued_after: Callable[[], Iterable[dict[str, Any]]],
) -> bool:
    """Whether the ticket's next move after a queued admission (the log's, or a scan queued
    after it) is another admission: two entries with no exit between. It happens when Redis,
    back with its data, admits a ticket and a gate still falling back admits it from the
    database before Redis's scan is written there: the database's entry is the later one,
    and the queued scan a second admission."""
    following = conn.execute(
        _NEXT_MOVE, {"ticket_id": record["ticket_id"], "nonce": record["nonce"], "at": at}
    ).first()
    if following is None or following.direction != ScanDirection.IN:
        return False
    for later in queued_after():  # an exit between, queued after this batch
        if (
            later["ticket_id"] == record["ticket_id"]
            and later.get("entry_state") == ScanDirection.OUT
            and at <= parse_time(later["scanned_at"]) <= following.scanned_at
        ):
            return False
    return True


def flush_scan_log(session: Session, batch: int = 1000) -> int:
    """Write the scans queued in Redis to the database, oldest first, in batches, skipping
    those written already; returns how many were taken off the queue. Idempotent by nonce: a
    batch written but not trimmed (a crash) is skipped the next time. Leaves the queue alone
    while the database is unreachable. Then tells Redis of the entries the database store took
    while Redis was unreachable (``catch_up.settle``)."""
    return _flush_and_settle(session, batch)[0]


def settle_after_fallback(session: Session) -> None:
    """Before a node that fell back answers from Redis again: the queue flushed, then Redis
    told of the entries the database store took meanwhile. Redis errors are the caller's
    (Redis still unreachable); with the database unreachable (or another flusher at work),
    Redis answers meanwhile and this node tries again at its next scan."""
    owed = catch_up.owed()
    if owed and _flush_and_settle(session, 1000)[1]:
        catch_up.settled(owed)


def _flush_and_settle(session: Session, batch: int) -> tuple[int, bool]:
    """(scans taken off the queue, whether Redis was told every marked entry)."""
    cache = redis_client()
    if cache is None:
        return 0, True
    # One flusher at a time: two would trim each other's batches.
    lock = cache.lock("ck:log:flushing", timeout=300, blocking=False)
    if not lock.acquire():
        return 0, False
    try:
        written = _flush(session, cache, batch)
        return written, catch_up.settle(session, cache)
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
        beyond = _queued_from(cache, len(raw))
        try:
            _write_scans(session, records, beyond)
            session.commit()
        except (IntegrityError, DataError):
            # One record the database refuses must not hold back every later scan.
            session.rollback()
            _write_one_by_one(session, cache, records, beyond)
        except SQLAlchemyError:
            session.rollback()
            log.warning("scan log not flushed: the database is unreachable", exc_info=True)
            return written
        cache.ltrim(LOG_KEY, len(raw), -1)
        written += len(raw)


def _queued_from(cache: redis.Redis, start: int) -> Callable[[], list[dict[str, Any]]]:
    """The scans queued from place ``start`` on, read when first asked for (rarely: a queued
    admission followed by another one in the log), once."""

    @functools.cache
    def records() -> list[dict[str, Any]]:
        return [json.loads(item) for item in cache.lrange(LOG_KEY, start, -1)]

    return records


def _write_one_by_one(
    session: Session,
    cache: redis.Redis,
    records: list[dict[str, Any]],
    beyond: Callable[[], list[dict[str, Any]]],
) -> None:
    """Write a batch record by record; one the database refuses goes to a dead-letter list
    (kept for inspection) instead of blocking the queue."""
    for place, record in enumerate(records):
        try:
            _write_scans(session, [record], lambda place=place: records[place + 1 :] + beyond())
            session.commit()
        except (IntegrityError, DataError):
            session.rollback()
            log.error("scan log record refused by the database", extra={"nonce": record["nonce"]})
            cache.rpush(DEAD_LETTER_KEY, json.dumps(record))


def _row(record: dict[str, Any]) -> dict[str, Any]:
    """A queued scan as its row of ``checkin``."""
    return {
        "event_id": record["event_id"],
        "ticket_id": record["ticket_id"],
        "gate": record["gate"],
        "direction": record["direction"],
        "result": record["result"],
        "nonce": record["nonce"],
        "request_fingerprint": record.get("request_fingerprint"),  # absent: queued before it was
        "scanned_at": parse_time(record["scanned_at"]),
        "recorded_at": parse_time(record["recorded_at"]),
        "device_id": record["device_id"],
        "user_id": record["user_id"],
        "offline": record["offline"],
        "device_verdict": record["device_verdict"],
        "conflict": record["conflict"],
    }


def _write_scans(
    session: Session,
    records: list[dict[str, Any]],
    queued_after: Callable[[], Iterable[dict[str, Any]]] = tuple,
) -> None:
    """Log the queued scans not logged yet, and apply to the entries what those did
    (``queued_after``: the scans queued after these)."""
    rows = [_row(r) for r in records if r["event_id"] is not None]
    for record in records:
        if record["event_id"] is None:  # a scanner left with no event to log it under
            log.warning("scan dropped from the log", extra={"nonce": record["nonce"]})
    if not rows:
        return
    conn = session.connection()
    new = set(conn.execute(_INSERT_LOGS, rows).scalars())
    for record in records:
        if record["nonce"] not in new or record.get("entry_state") is None:
            continue  # written before (through, or by an earlier flush): entry included
        overruled = _apply_entry(conn, record, fresh=False, queued_after=queued_after)
        if overruled is not None:
            # Admitted by Redis while the database held the entry: a double entry, reported
            # (unless its answer is still to be given: ``_write_through`` then clears it).
            conn.execute(
                update(_LOG)
                .where(_LOG.c.nonce == record["nonce"])
                .values(result=overruled.result, conflict=True, device_verdict=record["result"])
            )
