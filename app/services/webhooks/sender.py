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
(``transport.verify_signature``, the README's example): a captured request cannot be replayed
later. transport.py signs and POSTs; this module claims deliveries and records the answers.

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

import datetime as dt
import http.client
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from flask_babel import gettext
from sqlalchemy import Text, and_, cast, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from app.models import Conflict, DeliveryStatus, WebhookDelivery, WebhookEndpoint
from app.models.base import literal_in, literal_is, utcnow
from app.services.scoping import Actor, get_owned
from app.services.webhooks import outbox
from app.services.webhooks.transport import (
    DEADLINE_SECONDS,
    NO_ANSWER,
    STALLED,
    TIMEOUT_SECONDS,
    TOO_SLOW,
    Answer,
    DeadlineExceeded,
    Permanent,
    post,
    signature_header,
    stored_error,
)

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
ERROR_LENGTH = 300
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


class _LeaseLost(Exception):
    """The claim ran out before the delivery was sent: it is left to whoever claims it next."""


def backoff(attempts: int) -> dt.timedelta:
    """The pause after the ``attempts``-th failed attempt: 30 s, 1 min, 2 min ... at most 1 h."""
    return min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


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
            literal_is(WebhookDelivery.status, DeliveryStatus.PENDING),
            WebhookDelivery.next_attempt_at <= now,
        ),
        and_(
            literal_is(WebhookDelivery.status, DeliveryStatus.SENDING),
            WebhookDelivery.claimed_until < now,
        ),
    )


_older = aliased(WebhookDelivery)
# The endpoint's oldest unfinished delivery (only it may be claimed), of an active endpoint.
_FIRST_IN_LINE = ~exists().where(
    _older.endpoint_id == WebhookDelivery.endpoint_id,
    _older.id < WebhookDelivery.id,
    literal_in(_older.status, UNFINISHED),
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
    return post(
        url, body, headers, TIMEOUT_SECONDS, production=production, deadline=DEADLINE_SECONDS
    )


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
        text = stored_error(TOO_SLOW, seconds=f"{DEADLINE_SECONDS:g}")
    elif isinstance(exc, TimeoutError):
        text = stored_error(NO_ANSWER, seconds=f"{TIMEOUT_SECONDS:g}")
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{type(exc).__name__}: {exc.strerror}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:ERROR_LENGTH]
