"""Delivering webhooks: each delivery POSTed to its endpoint, signed, at least once, and one
endpoint's deliveries in the order they were written.

The claim is the mail sender's (services/mail/sender.py): a sender *claims* due rows in one
statement and commits the claim before it talks to the endpoint: the row is ``sending`` until
``claimed_until`` (the lease), under a random ``claim_token`` of its own; the outcome is
recorded only where the token is still its own. So:

- a sender that dies after its claim (a killed worker, a lost machine) leaves a row that is due
  again once the lease ran out, and the next sweep sends it;
- two senders never hold the same row (``FOR UPDATE SKIP LOCKED``, and a claimed row is no
  longer due);
- a sender that dies after the endpoint answered and before the row says so sends it again
  after the lease: delivery is *at least once*, and a receiver drops a repeat by its
  ``Bilheteria-Delivery`` id (the same on every attempt, a "Send again" included).

**Order.** Only an endpoint's oldest unfinished delivery (pending or sending, by id: the order
they were written in) may be claimed: while it waits for its retry, or is being sent, the
endpoint's later deliveries wait behind it. An endpoint therefore receives its deliveries one
at a time in the order written, unless one is given up (``failed``: the next ones go on) and
later sent again by hand, or a crash repeats one (at least once): a receiver that must not go
back in time compares ``created_at`` of the body, or the ids, with what it has seen. One
claim takes at most one delivery per endpoint; the task sent after a commit
(``send_endpoint``) then goes on with the endpoint's next one as soon as one is delivered.

**Signature** (Stripe's scheme): ``Bilheteria-Signature: t=<unix time>,v1=<hex>``, the hex
being HMAC-SHA256 of ``"<t>.<body>"`` under the endpoint's secret; a second ``v1`` during the
day after a rotation, under the old secret. The receiver recomputes it over the raw body,
compares in constant time and refuses a ``t`` more than 5 minutes away from its clock
(``verify_signature``, the README's example): a captured request cannot be replayed later.

A failure (no connection, a timeout, any answer but 2xx) puts the row back as pending after a
growing pause (``backoff``), or fails it once it had ``WebhookDelivery.MAX_ATTEMPTS`` or is
older than ``MAX_AGE``. Redirects are not followed (an answer of its own, a failure). In
production a host that resolves to an address not on the internet (this machine, a private
network, cloud metadata) is refused for good: partners name the addresses.

**A slow endpoint.** A socket's timeout bounds each read, not the request: an endpoint that
drips a byte every few seconds would hold a worker for hours (and, after the lease, the next
sender that claims the row). So the whole POST (connect, send, the status, the headers and at
most ``RESPONSE_EXCERPT * 4`` bytes of body) has a deadline, ``DEADLINE_SECONDS``, far shorter
than the lease: at the deadline the socket is shut down and the attempt is a failure, retried
after the backoff.

**The address connected to is the one checked.** The host is resolved once; in production
every address it resolves to must be on the internet, and the connection goes to one of those
addresses (not to a second resolution, which a DNS server could answer differently: DNS
rebinding). The host name still goes in the Host header and, for https, in the TLS handshake
(SNI) and the certificate's check.

**Errors shown to partners** (``last_error``) are stored in English, the msgids of
``ERRORS``, and translated when shown (``error_text``): the dashboard shows them in the
reader's language, logs and the database keep one language.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import gettext
from sqlalchemy import Text, and_, cast, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from app.i18n import N_
from app.models import Conflict, DeliveryStatus, WebhookDelivery, WebhookEndpoint
from app.models.base import utcnow
from app.models.webhook import is_public_address
from app.services.scoping import Actor, get_owned
from app.services.webhooks import outbox

log = logging.getLogger(__name__)

#: How long a claim holds a row: far longer than a POST may take (DEADLINE_SECONDS, a batch of
#: them one after another), short enough that a crashed sender's deliveries wait minutes.
LEASE = dt.timedelta(minutes=5)
BACKOFF_FIRST = dt.timedelta(seconds=30)
BACKOFF_MAX = dt.timedelta(hours=1)
#: Rows claimed at once by a sweep (at most one per endpoint).
BATCH = 10
#: Deliveries one task sends to its endpoint before leaving the rest to the sweep.
PER_TASK = 100
#: How long a task or a sweep goes on claiming: after that it leaves the rest to the next
#: sweep, so endpoints that answer slowly (each within the deadline) hold a worker no longer.
RUN_SECONDS = 60.0
#: Each network operation's timeout (connect, a read)...
TIMEOUT_SECONDS = 10.0
#: ...and the whole POST's: connect, send, status, headers and the body's excerpt.
DEADLINE_SECONDS = 15.0
#: How much of an answer is kept to show in the dashboard.
RESPONSE_EXCERPT = 500
ERROR_LENGTH = 300
#: The signature's tolerance a receiver should apply (and ``verify_signature`` does).
TOLERANCE = dt.timedelta(minutes=5)
USER_AGENT = "Bilheteria-Webhooks/1"
UNFINISHED = (DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value)

#: Called with the claimed ids right after the claim's commit, before any request: tests stop
#: the process here to show that a claimed, unsent delivery is sent later.
_after_claim: Callable[[list[int]], None] | None = None
#: Called with a delivery's id once its endpoint answered, before the row records it: tests
#: stop the process here to show the delivery sent again (at least once).
_after_post: Callable[[int], None] | None = None


@dataclass
class Outcome:
    """What one run did: ids delivered, put back for a retry, and failed for good."""

    delivered: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        self.delivered += other.delivered
        self.retried += other.retried
        self.failed += other.failed


@dataclass(frozen=True)
class Claim:
    id: int
    token: str


@dataclass(frozen=True)
class Answer:
    """What the endpoint answered: its HTTP status and the start of its body."""

    status: int
    body: str


class Permanent(Exception):
    """A failure that another attempt would repeat: the delivery fails at once."""


class DeadlineExceeded(TimeoutError):
    """The endpoint did not finish its answer within DEADLINE_SECONDS."""


#: The reasons a delivery failed, as stored in ``last_error`` (English, these msgids with their
#: values) and shown translated (``error_text``).
STALLED = N_("the sender stopped while sending it (it may have been delivered)")
NOT_WEB = N_("not a web address: %(url)s")
NOT_ASCII = N_("the address has characters other than ASCII: it cannot be sent")
NOT_PUBLIC = N_("%(host)s resolves to an address not on the internet (%(address)s)")
NO_ANSWER = N_("no answer within %(seconds)s s")
TOO_SLOW = N_("no complete answer within %(seconds)s s")
ERRORS = (STALLED, NOT_WEB, NOT_ASCII, NOT_PUBLIC, NO_ANSWER, TOO_SLOW)


def _error(msgid: str, **values: Any) -> str:
    """A reason as stored: the English text (the msgid with its values)."""
    return msgid % values if values else msgid


def _pattern(msgid: str) -> re.Pattern[str]:
    parts = re.split(r"%\((\w+)\)s", msgid)  # text, name, text, name, ..., text
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.*)" for i, part in enumerate(parts)
    )
    return re.compile(regex + r"\Z", re.DOTALL)


_PATTERNS = [(msgid, _pattern(msgid)) for msgid in ERRORS]


def error_text(stored: str | None) -> str:
    """A stored ``last_error`` in the reader's language: one of ``ERRORS`` translated with its
    values, any other (an HTTP status, the network's own error) as it is."""
    if not stored:
        return ""
    for msgid, pattern in _PATTERNS:
        found = pattern.match(stored)
        if found:
            return gettext(msgid, **found.groupdict())
    return stored


class _LeaseLost(Exception):
    """The claim ran out before the delivery was sent: it is left to whoever claims it next."""


def backoff(attempts: int) -> dt.timedelta:
    """The pause after the ``attempts``-th failed attempt: 30 s, 1 min, 2 min ... at most 1 h."""
    return min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


# --------------------------------------------------------------------------- signing


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``, in hex."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: list[str], timestamp: int, body: bytes) -> str:
    return ",".join([f"t={timestamp}", *(f"v1={sign(s, timestamp, body)}" for s in secrets)])


def verify_signature(
    header: str, body: bytes, secret: str, *, now: float | None = None, tolerance: float = 300
) -> bool:
    """The receiver's check: one ``v1`` of the header is the body's signature under ``secret``
    and its ``t`` is within ``tolerance`` seconds of ``now``."""
    timestamp, signatures = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, signature) for signature in signatures)


def body_of(delivery: WebhookDelivery) -> bytes:
    """The JSON a delivery POSTs: the same bytes on every attempt."""
    document = {
        "id": delivery.id,
        "type": delivery.kind,
        "created_at": outbox.iso(delivery.created_at),
        "data": delivery.payload,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


# --------------------------------------------------------------------------- claiming


def _due(now: dt.datetime) -> Any:
    return or_(
        and_(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
        ),
        and_(WebhookDelivery.status == DeliveryStatus.SENDING, WebhookDelivery.claimed_until < now),
    )


_older = aliased(WebhookDelivery)
# The endpoint's oldest unfinished delivery (only it may be claimed), of an active endpoint.
_FIRST_IN_LINE = ~exists().where(
    _older.endpoint_id == WebhookDelivery.endpoint_id,
    _older.id < WebhookDelivery.id,
    _older.status.in_(UNFINISHED),
)
_ENDPOINT_ACTIVE = exists().where(
    WebhookEndpoint.id == WebhookDelivery.endpoint_id, WebhookEndpoint.active
)


def claim(
    session: Session,
    limit: int,
    *,
    endpoint_id: int | None = None,
    lease: dt.timedelta = LEASE,
) -> list[Claim]:
    """Take up to ``limit`` due deliveries, each the first in line of its endpoint (only
    ``endpoint_id``'s when given), for this sender and commit: one statement; rows another
    sender is claiming are skipped, and so are the ones behind them."""
    now = utcnow()
    due = (
        select(WebhookDelivery.id)
        .where(_due(now), _FIRST_IN_LINE, _ENDPOINT_ACTIVE)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    )
    if endpoint_id is not None:
        due = due.where(WebhookDelivery.endpoint_id == endpoint_id)
    # A CTE, run once (as the mail sender's claim says why).
    taken = due.cte("taken")
    rows = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == taken.c.id, _due(now))
        .values(
            status=DeliveryStatus.SENDING.value,
            claimed_until=now + lease,
            claim_token=func.replace(cast(func.gen_random_uuid(), Text), "-", ""),
            attempts=WebhookDelivery.attempts + 1,
            last_attempt_at=now,
        )
        .returning(WebhookDelivery.id, WebhookDelivery.claim_token)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    claims = sorted((Claim(row.id, row.claim_token) for row in rows), key=lambda c: c.id)
    if claims and _after_claim is not None:
        _after_claim([c.id for c in claims])
    return claims


def send_endpoint(session: Session, endpoint_id: int, limit: int = PER_TASK) -> Outcome:
    """Deliver what this endpoint has due, one after another in order, until one must wait for
    its retry (what ``webhooks.send`` does after a commit that wrote deliveries)."""
    outcome = Outcome()
    stop = time.monotonic() + RUN_SECONDS
    for _ in range(limit):
        if time.monotonic() >= stop:
            break
        claims = claim(session, 1, endpoint_id=endpoint_id)
        if not claims:
            break
        one = _deliver(session, claims)
        outcome.add(one)
        if not (one.delivered or one.failed):  # waits for its retry, and the rest behind it
            break
    return outcome


def send_due(session: Session, limit: int = 500, batch: int = BATCH) -> Outcome:
    """Send what is due, at most ``limit``, claiming ``batch`` at a time (the sweep: retries,
    deliveries whose task was lost or never sent, claims of senders that died)."""
    outcome = Outcome()
    _give_up_stalled(session)
    stop = time.monotonic() + RUN_SECONDS
    while limit > 0 and time.monotonic() < stop:
        claims = claim(session, min(batch, limit))
        if not claims:
            break
        limit -= len(claims)
        outcome.add(_deliver(session, claims))
    return outcome


def resend(session: Session, delivery_id: int, actor: Actor) -> None:
    """Send a delivered or failed delivery again ("Send again"): due now, its attempts counted
    anew, the same id and body (a receiver that processed it drops it by its id). It goes
    first among its endpoint's unfinished deliveries written after it."""
    delivery = get_owned(session, WebhookDelivery, delivery_id, actor)
    changed = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery.id,
            WebhookDelivery.status.in_(
                [DeliveryStatus.DELIVERED.value, DeliveryStatus.FAILED.value]
            ),
        )
        .values(
            status=DeliveryStatus.PENDING.value,
            next_attempt_at=utcnow(),
            attempts=0,
            claimed_until=None,
            claim_token=None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        session.rollback()
        raise Conflict(gettext("Only a delivered or failed delivery can be sent again."))
    outbox.send_after_commit(session, [delivery.endpoint_id])
    session.commit()


def _give_up_stalled(session: Session) -> None:
    """A row whose sender died after its last allowed attempt was claimed fails, rather than
    being claimed forever (a delivery that kills its sender every time)."""
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.status == DeliveryStatus.SENDING,
            WebhookDelivery.claimed_until < utcnow(),
            WebhookDelivery.attempts >= WebhookDelivery.MAX_ATTEMPTS,
        )
        .values(
            status=DeliveryStatus.FAILED.value,
            last_error=STALLED,
            claimed_until=None,
            claim_token=None,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()


# --------------------------------------------------------------------------- delivery


def _excerpt(raw: bytes) -> str:
    return raw[: RESPONSE_EXCERPT * 4].decode("utf-8", errors="replace")[:RESPONSE_EXCERPT]


def destination(host: str, port: int, *, production: bool) -> list[tuple[Any, ...]]:
    """The addresses to connect to for ``host``: resolved once, here. In production each must
    be on the internet, else Permanent: a name that also resolves to this machine or a private
    network is refused, whichever address a connection would use."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError:
        raise Permanent(_error(NOT_ASCII)) from None
    if production:
        private = sorted({info[4][0] for info in found if not is_public_address(info[4][0])})
        if private:
            raise Permanent(_error(NOT_PUBLIC, host=host, address=private[0]))
    return [info[4] for info in found]


def check_destination(url: str) -> None:
    """In production, refuse a host that resolves to an address not on the internet (Permanent);
    ``post`` does this itself with the addresses it connects to."""
    parts = urlsplit(url)
    try:
        destination(parts.hostname or "", parts.port or 443, production=True)
    except OSError:
        return  # the request's own error says it


class _Pinned:
    """A connection to the addresses ``destination`` checked, never to a name resolved again;
    ``abort`` (from another thread, at the deadline) shuts its socket down."""

    host: str
    port: int
    timeout: float
    sock: Any

    def _pin(self, addresses: list[tuple[Any, ...]], deadline: float) -> None:
        self._addresses, self._deadline = addresses, deadline
        self._raw: socket.socket | None = None
        self._aborted = threading.Event()

    def _open(self) -> socket.socket:
        error: OSError = OSError("no address")
        for address in self._addresses:
            left = self._deadline - time.monotonic()
            if left <= 0 or self._aborted.is_set():
                raise DeadlineExceeded
            try:
                sock = socket.create_connection((address[0], self.port), min(self.timeout, left))
            except OSError as exc:
                error = exc
                continue
            self._raw = sock
            if self._aborted.is_set():  # the deadline passed while connecting
                self.abort()
            return sock
        raise error

    def abort(self) -> None:
        self._aborted.set()
        if self._raw is not None:
            # The plain socket's shutdown, below TLS: a blocked read returns at once.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._raw, socket.SHUT_RDWR)


class _PinnedHTTP(_Pinned, http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = self._open()


class _PinnedHTTPS(_Pinned, http.client.HTTPSConnection):
    def connect(self) -> None:
        # SNI and the certificate's check are the host name's, whatever address we reached.
        self.sock = self._context.wrap_socket(self._open(), server_hostname=self.host)


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    *,
    production: bool = False,
    deadline: float | None = None,
) -> Answer:
    """POST ``body`` to ``url``, connecting to the address checked (``destination``); the
    answer, whatever its status, read within ``deadline`` seconds (DEADLINE_SECONDS) in all.
    Network failures raise (DeadlineExceeded at the deadline); an address that can never be
    sent, Permanent. Redirects are answers: never followed."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):  # never file: or another scheme
        raise Permanent(_error(NOT_WEB, url=url[:100]))
    if not url.isascii():  # a request line and a Host header are ASCII: every attempt would fail
        raise Permanent(_error(NOT_ASCII))
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    seconds = DEADLINE_SECONDS if deadline is None else deadline
    ends = time.monotonic() + seconds
    addresses = destination(host, port, production=production)
    kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    extra = {"context": ssl.create_default_context()} if kind is _PinnedHTTPS else {}
    connection = kind(host, port, timeout=min(timeout, seconds), **extra)
    connection._pin(addresses, ends)
    timer = threading.Timer(seconds, connection.abort)
    timer.daemon = True
    timer.start()
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read(RESPONSE_EXCERPT * 4)  # the excerpt's worth, never the whole body
        if connection._aborted.is_set():
            raise DeadlineExceeded
        return Answer(response.status, _excerpt(raw))
    except (OSError, http.client.HTTPException, ValueError):
        if connection._aborted.is_set():
            raise DeadlineExceeded from None
        raise
    finally:
        timer.cancel()
        connection.close()


def _deliver(session: Session, claims: list[Claim]) -> Outcome:
    outcome = Outcome()
    production = current_app.config.get("APP_ENV") == "production"
    for claimed in claims:
        try:
            answer = _send(session, claimed, production)
        except _LeaseLost:
            session.rollback()
            log.warning("webhook %s skipped: its claim ran out before it was sent", claimed.id)
            continue
        except Permanent as exc:
            session.rollback()
            _record(session, claimed, None, str(exc), permanent=True, outcome=outcome)
            continue
        except (OSError, http.client.HTTPException, ValueError) as exc:  # network, timeout
            session.rollback()
            log.info("webhook %s not delivered: %s", claimed.id, exc)
            _record(session, claimed, None, _describe(exc), outcome=outcome)
            continue
        if _after_post is not None:
            _after_post(claimed.id)
        error = None if 200 <= answer.status < 300 else f"HTTP {answer.status}"
        _record(session, claimed, answer, error, outcome=outcome)
    return outcome


def _send(session: Session, claimed: Claim, production: bool) -> Answer:
    delivery = session.get(WebhookDelivery, claimed.id, populate_existing=True)
    if delivery is None:  # its endpoint was deleted after the claim
        raise _LeaseLost
    now = utcnow()
    if delivery.claim_token != claimed.token or (delivery.claimed_until or now) <= now:
        # The lease ran out while earlier deliveries of the batch waited on slow endpoints:
        # another sender may have it now.
        raise _LeaseLost
    endpoint = delivery.endpoint
    lease_ends, url, body = delivery.claimed_until, endpoint.url, body_of(delivery)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Bilheteria-Event": delivery.kind,
        "Bilheteria-Delivery": str(delivery.id),
        "Bilheteria-Signature": signature_header(endpoint.signing_secrets(now), timestamp, body),
    }
    session.rollback()  # no transaction stays open while the endpoint answers
    if lease_ends <= utcnow():
        raise _LeaseLost
    return post(url, body, headers, TIMEOUT_SECONDS, production=production)


def _record(
    session: Session,
    claimed: Claim,
    answer: Answer | None,
    error: str | None,
    *,
    permanent: bool = False,
    outcome: Outcome,
) -> None:
    """Delivered (``error`` None), back to pending after the backoff, or failed: after a
    permanent failure, the last attempt allowed, or past MAX_AGE. Only while the claim is this
    sender's: otherwise another sender has it and its outcome is the one kept."""
    now = utcnow()
    row = session.execute(
        select(WebhookDelivery.attempts, WebhookDelivery.created_at).where(
            WebhookDelivery.id == claimed.id, WebhookDelivery.claim_token == claimed.token
        )
    ).first()
    if row is None:
        session.rollback()
        if error is None:
            log.warning("webhook %s delivered after its claim ran out", claimed.id)
        return
    values: dict[str, Any] = {
        "claimed_until": None,
        "claim_token": None,
        "response_status": answer.status if answer is not None else None,
        "response_body": answer.body if answer is not None else None,
        "last_error": error[:ERROR_LENGTH] if error is not None else None,
    }
    if error is None:
        values.update(status=DeliveryStatus.DELIVERED.value, delivered_at=now)
        kept = outcome.delivered
    elif (
        permanent
        or row.attempts >= WebhookDelivery.MAX_ATTEMPTS
        or now - row.created_at >= WebhookDelivery.MAX_AGE
    ):
        values.update(status=DeliveryStatus.FAILED.value, next_attempt_at=now)
        kept = outcome.failed
    else:
        values.update(
            status=DeliveryStatus.PENDING.value, next_attempt_at=now + backoff(row.attempts)
        )
        kept = outcome.retried
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == claimed.id, WebhookDelivery.claim_token == claimed.token)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    kept.append(claimed.id)


def _describe(exc: BaseException) -> str:
    """A short reason a partner can act on."""
    reason = getattr(exc, "reason", None)  # URLError wraps the socket's error
    if isinstance(reason, BaseException):
        exc = reason
    if isinstance(exc, DeadlineExceeded):
        text = _error(TOO_SLOW, seconds=f"{DEADLINE_SECONDS:g}")
    elif isinstance(exc, TimeoutError):
        text = _error(NO_ANSWER, seconds=f"{TIMEOUT_SECONDS:g}")
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{type(exc).__name__}: {exc.strerror}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:ERROR_LENGTH]
