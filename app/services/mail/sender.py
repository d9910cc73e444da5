"""Delivering the outbox over SMTP, each mail once as far as SMTP allows.

A sender first *claims* due rows in one statement and commits the claim before it talks to the
mail server: the row is ``sending`` until ``claimed_until`` (the lease), under a random
``claim_token`` of its own. It then renders the mail, hands it to the server and records the
outcome only where the token is still its own. So:

- a sender that dies after its claim (a killed worker, a lost machine) leaves a row that is due
  again once the lease ran out, and the next sweep sends it, once;
- two senders never hold the same row: the claim reads due rows ``FOR UPDATE SKIP LOCKED`` and
  the claimed row is no longer due;
- the one window left is a crash after the server accepted the mail and before the row says so:
  the mail is sent again after the lease, with the same Message-ID (``OutboxMail.message_id``),
  which mail systems and readers use to show it once.

A failure (server down, timeout, a refusal, a renderer's error) puts the row back as pending
after a growing pause (``backoff``), or fails it once it had ``OutboxMail.MAX_ATTEMPTS``; a
permanent refusal of the recipient (5xx) or a mail about something gone fails it at once. An
admin may send a failed or sent mail again (``resend``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import smtplib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from flask import current_app
from flask_babel import gettext
from sqlalchemy import Text, and_, cast, func, or_, select, update
from sqlalchemy.orm import Session

from app.models import MailStatus, OutboxMail
from app.models.base import literal_is, utcnow
from app.models.errors import Conflict, NotFound
from app.services.mail import messages, outbox

log = logging.getLogger(__name__)

#: How long a claim holds a row: past it, a sender that stopped is presumed dead and the row is
#: anyone's again. Far longer than one mail takes (a connection and a PDF), short enough that a
#: crashed sender's mails wait minutes, not hours.
LEASE = dt.timedelta(minutes=5)
BACKOFF_FIRST = dt.timedelta(seconds=30)
BACKOFF_MAX = dt.timedelta(hours=1)
#: Rows claimed at once by a sweep, sent over one SMTP connection.
BATCH = 20
ERROR_LENGTH = 300

#: Called with the claimed ids right after the claim's commit, before any SMTP: tests stop the
#: process here to show that a claimed, unsent mail is sent later, once.
_after_claim: Callable[[list[int]], None] | None = None


@dataclass
class Outcome:
    """What one run did: ids sent, put back for a retry, and failed for good."""

    sent: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)  # moot: what it was about is gone

    def add(self, other: Outcome) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.dropped += other.dropped


@dataclass(frozen=True)
class Claim:
    id: int
    token: str


class Permanent(Exception):
    """A failure that another attempt would repeat: the mail fails at once."""


class _LeaseLost(Exception):
    """The claim ran out before the mail was sent: it is left to whoever claims it next."""


def backoff(attempts: int) -> dt.timedelta:
    """The pause after the ``attempts``-th failed attempt: 30 s, 1 min, 2 min ... at most 1 h."""
    return min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


def _due(now: dt.datetime) -> Any:
    return or_(
        and_(literal_is(OutboxMail.status, MailStatus.PENDING), OutboxMail.next_attempt_at <= now),
        and_(literal_is(OutboxMail.status, MailStatus.SENDING), OutboxMail.claimed_until < now),
    )


def claim(
    session: Session, limit: int, *, mail_id: int | None = None, lease: dt.timedelta = LEASE
) -> list[Claim]:
    """Take up to ``limit`` due rows (oldest due first; only ``mail_id`` when given) for this
    sender and commit: one statement, rows another sender is claiming are skipped."""
    now = utcnow()
    due = (
        select(OutboxMail.id)
        .where(_due(now))
        .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if mail_id is not None:
        due = due.where(OutboxMail.id == mail_id)
    # A CTE, run once: as an IN (subquery) the planner may rescan it per row, and each rescan
    # skips the rows this statement just locked and takes the next ones, past the limit.
    taken = due.cte("taken")
    rows = session.execute(
        update(OutboxMail)
        .where(OutboxMail.id == taken.c.id, _due(now))
        .values(
            status=MailStatus.SENDING.value,
            claimed_until=now + lease,
            # A token per row: the outcome is written only by the claim that sent it.
            claim_token=func.replace(cast(func.gen_random_uuid(), Text), "-", ""),
            attempts=OutboxMail.attempts + 1,
        )
        .returning(OutboxMail.id, OutboxMail.claim_token)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    claims = sorted((Claim(row.id, row.claim_token) for row in rows), key=lambda c: c.id)
    if claims and _after_claim is not None:
        _after_claim([c.id for c in claims])
    return claims


def send_one(session: Session, mail_id: int) -> Outcome:
    """Send this mail now if it is due (what ``mail.send`` does right after its commit); a mail
    already sent, held, or being sent by another sender is left alone."""
    if not outbox.configured():
        return Outcome()
    return _deliver(session, claim(session, 1, mail_id=mail_id))


def send_due(session: Session, limit: int = 500, batch: int = BATCH) -> Outcome:
    """Send what is due, ``batch`` rows at a time over one connection each, at most ``limit``
    (the sweep: retries, mails whose task was lost, claims of senders that died)."""
    outcome = Outcome()
    if not outbox.configured():
        return outcome
    _give_up_stalled(session)
    while limit > 0:
        claims = claim(session, min(batch, limit))
        if not claims:
            break
        limit -= len(claims)
        outcome.add(_deliver(session, claims))
    return outcome


def resend(session: Session, mail_id: int) -> None:
    """An admin sends a failed (or sent) mail again: due now, with its attempts counted anew;
    it keeps its Message-ID."""
    status = session.scalar(select(OutboxMail.status).where(OutboxMail.id == mail_id))
    if status is None:
        raise NotFound(gettext("Mail not found."))
    changed = session.execute(
        update(OutboxMail)
        .where(
            OutboxMail.id == mail_id,
            OutboxMail.status.in_([MailStatus.FAILED.value, MailStatus.SENT.value]),
        )
        .values(
            status=MailStatus.PENDING.value,
            next_attempt_at=utcnow(),
            attempts=0,
            last_error=None,
            claimed_until=None,
            claim_token=None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        session.rollback()
        raise Conflict(gettext("Only a failed or sent mail can be sent again."))
    outbox.send_after_commit(session, mail_id)
    session.commit()


def _give_up_stalled(session: Session) -> None:
    """A row whose sender died after its last allowed attempt was claimed fails, rather than
    being claimed forever (a mail that kills its sender every time)."""
    now = utcnow()
    session.execute(
        update(OutboxMail)
        .where(
            OutboxMail.status == MailStatus.SENDING,
            OutboxMail.claimed_until < now,
            OutboxMail.attempts >= OutboxMail.MAX_ATTEMPTS,
        )
        .values(
            status=MailStatus.FAILED.value,
            last_error="the sender stopped while sending it (it may have been sent)",
            claimed_until=None,
            claim_token=None,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()


# --------------------------------------------------------------------------- delivery


class _Connection:
    """One SMTP connection for a batch, opened at the first mail, opened again after an error
    that may have left it unusable."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.smtp: smtplib.SMTP | None = None
        # A server that could not be reached is not tried again for every mail of the batch
        # (each would wait MAIL_TIMEOUT_SECONDS): they all fail with its error.
        self.unreachable: Exception | None = None

    def send(self, message: EmailMessage, sender: str, to: str) -> None:
        if self.unreachable is not None:
            raise self.unreachable
        if self.smtp is None:
            try:
                self.smtp = connect(self.config)
            except Exception as exc:
                self.unreachable = exc
                raise
        self.smtp.send_message(message, from_addr=sender, to_addrs=[to])

    def drop(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.close()
            finally:
                self.smtp = None

    def close(self) -> None:
        if self.smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.smtp.quit()
            self.drop()


def connect(config: Mapping[str, Any]) -> smtplib.SMTP:
    """A connection to MAIL_SERVER: TLS from the start (MAIL_USE_SSL) or after STARTTLS
    (MAIL_USE_TLS), signed in when MAIL_USERNAME is set."""
    host, port = config["MAIL_SERVER"], int(config["MAIL_PORT"])
    timeout = float(config["MAIL_TIMEOUT_SECONDS"])
    smtp: smtplib.SMTP
    if config.get("MAIL_USE_SSL"):
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        if config.get("MAIL_USE_TLS") and not config.get("MAIL_USE_SSL"):
            smtp.starttls(context=ssl.create_default_context())
        if config.get("MAIL_USERNAME"):
            smtp.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def build(mail: OutboxMail, message: messages.Message, sender: str) -> EmailMessage:
    """The MIME message: text and HTML as alternatives, the HTML with its inline images
    (multipart/related), attachments around both (multipart/mixed)."""
    email = EmailMessage()
    try:
        email["Subject"] = message.subject
        email["From"] = sender
        email["To"] = mail.to_address
        email["Date"] = format_datetime(utcnow().replace(tzinfo=dt.UTC))
        email["Message-ID"] = mail.message_id
        # Which mail this is, for a mail system's rules (and support): never an address.
        email["X-Bilheteria-Mail"] = mail.kind
    except ValueError as exc:  # a header with a line break: the same every time
        raise Permanent(f"cannot build the message: {exc}") from exc
    email.set_content(message.text)
    email.add_alternative(message.html, subtype="html")
    if message.inline:
        html = email.get_payload()[1]
        for image in message.inline:
            maintype, subtype = image.mimetype.split("/", 1)
            html.add_related(
                image.data, maintype, subtype, cid=f"<{image.cid}>", disposition="inline"
            )
    for attachment in message.attachments:
        maintype, subtype = attachment.mimetype.split("/", 1)
        # Text (a calendar entry, a CSV statement) is UTF-8: without the charset, readers take
        # it for ASCII and garble accented names.
        charset = {"params": {"charset": "utf-8"}} if maintype == "text" else {}
        email.add_attachment(
            attachment.data, maintype, subtype, filename=attachment.filename, **charset
        )
    # Last: building the body moves Content-* headers into the first part.
    email["Content-Language"] = mail.locale.replace("_", "-")
    return email


def _deliver(session: Session, claims: list[Claim]) -> Outcome:
    outcome = Outcome()
    if not claims:
        return outcome
    config = current_app.config
    sender = config["MAIL_DEFAULT_SENDER"]
    envelope_from = parseaddr(sender)[1] or sender
    connection = _Connection(config)
    try:
        for claimed in claims:
            try:
                subject = _send(session, claimed, connection, sender, envelope_from)
            except _LeaseLost:
                session.rollback()
                log.warning("mail %s skipped: its claim ran out before it was sent", claimed.id)
            except messages.Gone as exc:
                session.rollback()
                _fail(session, claimed, f"gone: {exc}", dropped=True, outcome=outcome)
            except Permanent as exc:
                session.rollback()
                _fail(session, claimed, str(exc), permanent=True, outcome=outcome)
            except smtplib.SMTPRecipientsRefused as exc:
                session.rollback()
                codes = [code for code, _ in exc.recipients.values()]
                _fail(
                    session,
                    claimed,
                    _describe(exc, config),
                    permanent=all(code >= 500 for code in codes),
                    outcome=outcome,
                )
            except smtplib.SMTPDataError as exc:  # the server refused this message's content
                session.rollback()
                _fail(
                    session,
                    claimed,
                    _describe(exc, config),
                    permanent=exc.smtp_code >= 500,
                    outcome=outcome,
                )
            except Exception as exc:  # noqa: BLE001 - server down, timeout, a renderer's bug
                session.rollback()
                connection.drop()
                # A server's error says enough; anything else (a renderer's bug) gets its trace.
                expected = isinstance(exc, (OSError, smtplib.SMTPException))
                log.warning("mail %s not sent: %s", claimed.id, exc, exc_info=not expected)
                _fail(session, claimed, _describe(exc, config), permanent=False, outcome=outcome)
            else:
                _mark_sent(session, claimed, subject)
                outcome.sent.append(claimed.id)
    finally:
        connection.close()
    return outcome


def _send(
    session: Session, claimed: Claim, connection: _Connection, sender: str, envelope_from: str
) -> str:
    mail = session.get(OutboxMail, claimed.id, populate_existing=True)
    if mail is None:  # deleted after the claim
        raise messages.Gone("the mail was deleted")
    if mail.claim_token != claimed.token or (mail.claimed_until or utcnow()) <= utcnow():
        # The lease ran out while earlier mails of the batch waited on a slow server: another
        # sender may have it now, and sending it here could send it twice.
        raise _LeaseLost
    lease_ends = mail.claimed_until
    message = messages.render(session, mail)
    email = build(mail, message, sender)
    to = mail.to_address
    # The render's reads end here: no transaction stays open while the server answers.
    session.rollback()
    if lease_ends <= utcnow():  # a long render (a stadium's PDF) outlasted the claim
        raise _LeaseLost
    connection.send(email, envelope_from, to)
    return message.subject


def _mark_sent(session: Session, claimed: Claim, subject: str) -> None:
    marked = session.execute(
        update(OutboxMail)
        .where(OutboxMail.id == claimed.id, OutboxMail.claim_token == claimed.token)
        .values(
            status=MailStatus.SENT.value,
            sent_at=utcnow(),
            subject=subject[:300],
            last_error=None,
            claimed_until=None,
            claim_token=None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    if not marked:
        log.warning("mail %s was sent after its claim ran out: another sender had it", claimed.id)


def _fail(
    session: Session,
    claimed: Claim,
    error: str,
    *,
    permanent: bool = False,
    dropped: bool = False,
    outcome: Outcome,
) -> None:
    """Back to pending after the backoff, or failed: after a permanent failure, or when this
    was the last attempt allowed; or dropped, with its reason, when it is moot."""
    now = utcnow()
    attempts = session.scalar(
        select(OutboxMail.attempts).where(
            OutboxMail.id == claimed.id, OutboxMail.claim_token == claimed.token
        )
    )
    if attempts is None:  # another sender has it now: its outcome is the one kept
        session.rollback()
        return
    gives_up = dropped or permanent or attempts >= OutboxMail.MAX_ATTEMPTS
    status = (
        MailStatus.DROPPED if dropped else MailStatus.FAILED if gives_up else MailStatus.PENDING
    )
    session.execute(
        update(OutboxMail)
        .where(OutboxMail.id == claimed.id, OutboxMail.claim_token == claimed.token)
        .values(
            status=status.value,
            next_attempt_at=now if gives_up else now + backoff(attempts),
            last_error=error[:ERROR_LENGTH],
            claimed_until=None,
            claim_token=None,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    kept = outcome.dropped if dropped else outcome.failed if gives_up else outcome.retried
    kept.append(claimed.id)


def _describe(exc: BaseException, config: Mapping[str, Any]) -> str:
    """A short reason an admin can act on, without the server's credentials."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()))
        text = f"recipient refused: {code} {_decode(reply)}"
    elif isinstance(exc, smtplib.SMTPResponseException):
        text = f"{type(exc).__name__}: {exc.smtp_code} {_decode(exc.smtp_error)}"
    elif isinstance(exc, OSError) and exc.strerror:
        text = (
            f"{type(exc).__name__}: {exc.strerror} ({config['MAIL_SERVER']}:{config['MAIL_PORT']})"
        )
    else:
        text = f"{type(exc).__name__}: {exc}"
    for secret in (config.get("MAIL_PASSWORD"),):
        if secret:
            text = text.replace(str(secret), "***")
    return " ".join(text.split())[:ERROR_LENGTH]


def _decode(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
