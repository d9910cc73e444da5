"""Writing mails: one ``mail_outbox`` row per mail, in the caller's transaction.

A mail exists exactly when the change that causes it commits: a rollback drops both, and a
crash after the commit leaves the row for the sender's sweep. After the commit a task is sent
to deliver it at once (``mail.send``); without a mail server configured the row waits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app, has_app_context, has_request_context
from sqlalchemy import CTE, Select, bindparam, case, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from app.i18n import DEFAULT_LOCALE, LANGUAGES, current_locale
from app.models import Customer, MailStatus, OutboxMail, PartnerUser
from app.models.base import literal_is, utcnow
from app.services.after_commit import after_commit, enqueue
from app.services.mail.pump import running

SEND_TASK = "mail.send"
SEND_DUE_TASK = "mail.send_due"


def configured() -> bool:
    """Whether a mail server is named: without one, mails wait in the outbox."""
    return has_app_context() and bool(current_app.config.get("MAIL_SERVER"))


def locale_of(session: Session, user_id: int | None) -> str:
    """The language of mails to this user: the one they saved (the switcher, or the sign-up's),
    else the request's when they are the one asking, else the platform's default."""
    saved = None
    if user_id is not None:
        saved = session.scalar(select(PartnerUser.locale).where(PartnerUser.id == user_id))
    return locale_from(saved, user_id)


def locale_from(saved: str | None, user_id: int | None) -> str:
    """locale_of's rule, for a caller that has read the user's saved language already."""
    if saved in LANGUAGES:
        return str(saved)
    if user_id is not None and has_request_context() and _request_user_id() == user_id:
        return current_locale()
    if has_app_context():
        return str(current_app.config.get("DEFAULT_LOCALE", DEFAULT_LOCALE))
    return DEFAULT_LOCALE


def locale_column(saved: Any) -> Any:
    """locale_of's rule in SQL, for mails written many at a time: the saved language when it is
    one of ours, else the platform's default."""
    default = current_app.config.get("DEFAULT_LOCALE", DEFAULT_LOCALE)
    return case((saved.in_(list(LANGUAGES)), saved), else_=literal(default))


def _request_user_id() -> int | None:
    """Who the request is from, for a session cookie and an API token alike."""
    try:
        user = current_app.appbuilder.sm.current_user
    except Exception:  # noqa: BLE001 - no AppBuilder or no user: not them
        return None
    return getattr(user, "id", None) if getattr(user, "is_authenticated", False) else None


_mail = OutboxMail.__table__
# Built once: a statement built per call cost the purchase path about a millisecond an order.
# Its parameters are named m_*, as a step of another statement (queue_step) whose UPDATEs would
# take a parameter named as one of their columns (status, kind) as a new value.
_INSERT = (
    pg_insert(_mail)
    .values(
        key=bindparam("m_key"),
        kind=bindparam("m_kind"),
        to_address=bindparam("m_to_address"),
        locale=bindparam("m_locale"),
        params=bindparam("m_params", type_=_mail.c.params.type),
        status=bindparam("m_status"),
        attempts=0,
        next_attempt_at=bindparam("now"),
        created_at=bindparam("now"),
    )
    .on_conflict_do_nothing(index_elements=["key"])
    .returning(_mail.c.id)
)


def queue(
    session: Session,
    kind: str,
    to_address: str,
    *,
    key: str,
    locale: str,
    params: Mapping[str, Any] | None = None,
    held: bool = False,
) -> int | None:
    """Write one mail; its id, or None when a mail of that ``key`` (its cause) was written
    before. ``held``: it waits until its address is confirmed (``release_held``)."""
    values = mail_values(kind, to_address, key=key, locale=locale, params=params, held=held)
    # The session's connection, no autoflush: the purchase path writes with Core statements
    # and nothing of a mail row depends on rows the session holds unflushed.
    mail_id = session.connection().execute(_INSERT, {**values, "now": utcnow()}).scalar()
    queued(session, values, mail_id)
    return mail_id


def mail_values(
    kind: str,
    to_address: str,
    *,
    key: str,
    locale: str,
    params: Mapping[str, Any] | None = None,
    held: bool = False,
) -> dict[str, Any]:
    """The parameters of one mail's INSERT (``queue``'s, or ``queue_step``'s with ``now``)."""
    return {
        "m_key": key,
        "m_kind": kind,
        "m_to_address": to_address,
        "m_locale": locale,
        "m_params": dict(params or {}),
        "m_status": (MailStatus.HELD if held else MailStatus.PENDING).value,
    }


def queue_step() -> CTE:
    """One mail's INSERT as a step of another statement (a data-modifying CTE, ``mailed``),
    which returns the mail's id (none when its key was written before): the sale writes its
    confirmation so (purchase/confirm.py). Its parameters are ``mail_values`` and ``now``;
    pass its id to ``queued`` once the statement ran."""
    return _INSERT.cte("mailed")


def queued(session: Session, values: Mapping[str, Any], mail_id: int | None) -> None:
    """After a mail of ``values`` was written (``mail_id``, None if it was there before): one
    not held is sent after the commit."""
    if mail_id is not None and values["m_status"] == MailStatus.PENDING.value:
        send_after_commit(session, mail_id)


def queue_to_customer(
    session: Session,
    kind: str,
    customer_id: int,
    *,
    key: str,
    params: Mapping[str, Any] | None = None,
    tickets: bool = False,
) -> int | None:
    """A mail to a customer, in their language. ``tickets``: it carries tickets (the order's
    confirmation), so it waits until the address is confirmed (a typo's owner would get them);
    a notice (a refund, an event cancelled or moved) goes out at once, confirmed or not."""
    customer = session.execute(
        select(Customer.email, Customer.user_id, Customer.email_confirmed_at).where(
            Customer.id == customer_id
        )
    ).one()
    return queue(
        session,
        kind,
        customer.email,
        key=key,
        locale=locale_of(session, customer.user_id),
        params=params,
        held=tickets and customer.email_confirmed_at is None,
    )


def queue_many(session: Session, kind: str, rows: Select[Any]) -> int:
    """One mail per row of ``rows`` (columns: key, to_address, locale, params, held), in one
    statement: an event's cancellation writes one per order, however many. Causes already
    written are skipped. Returns how many were written. Runs on the session's connection
    without flushing (it may run inside a flush): flush first if ``rows`` reads rows this
    session changed."""
    src = rows.subquery()
    now = utcnow()
    statement = (
        pg_insert(OutboxMail)
        .from_select(
            [
                "key",
                "kind",
                "to_address",
                "locale",
                "params",
                "status",
                "attempts",
                "next_attempt_at",
                "created_at",
            ],
            select(
                src.c.key,
                literal(kind),
                src.c.to_address,
                src.c.locale,
                src.c.params,
                case((src.c.held.is_(True), MailStatus.HELD.value), else_=MailStatus.PENDING.value),
                literal(0),
                literal(now),
                literal(now),
            ),
        )
        .on_conflict_do_nothing(index_elements=["key"])
    )
    written = session.connection().execute(statement).rowcount
    if written:
        enqueue_due(session)
    return written


def release_held(session: Session, address: str) -> int:
    """The address was confirmed: its held mails are due now."""
    released = session.execute(
        update(OutboxMail)
        .where(literal_is(OutboxMail.status, MailStatus.HELD), OutboxMail.to_address == address)
        .values(status=MailStatus.PENDING.value, next_attempt_at=utcnow())
    ).rowcount
    if released:
        enqueue_due(session)
    return released


def send_after_commit(session: Session, mail_id: int) -> None:
    if not configured():
        return
    pump = running()
    if pump is not None:  # the demo: its own thread sends (pump.py says why)
        after_commit(session, pump.wake)
    else:
        enqueue(session, SEND_TASK, mail_id)


def enqueue_due(session: Session) -> None:
    """After the commit, a sweep of what is due (many mails written at once)."""
    if not configured():
        return
    pump = running()
    after_commit(session, pump.wake if pump is not None else _send_due)


def _send_due() -> None:
    from app.extensions import celery

    celery.tasks[SEND_DUE_TASK].delay()
