"""Delivering the outbox: one mail right after the commit that wrote it, and the sweep of what
is due (retries, lost tasks, claims of senders that died). Neither raises: a mail that could
not go out carries its own retry in its row (services/mail/sender.py)."""

from __future__ import annotations

import logging

from app.extensions import db
from app.services.mail import sender
from app.tasks import celery

log = logging.getLogger(__name__)


@celery.task(name="mail.send")
def send(mail_id: int) -> str:
    try:
        outcome = sender.send_one(db.session, mail_id)
    except Exception:  # the database, say: the sweep sends it once it is back
        db.session.rollback()
        log.exception("mail %s: the sender failed; the sweep tries again", mail_id)
        return "error"
    if outcome.sent:
        return "sent"
    if outcome.failed:
        return "failed"
    if outcome.dropped:
        return "dropped"
    return "retry" if outcome.retried else "not due"


@celery.task(name="mail.send_due")
def send_due() -> dict[str, int]:
    try:
        outcome = sender.send_due(db.session)
    except Exception:
        db.session.rollback()
        log.exception("the mail sweep failed; it runs again at its next turn")
        return {"error": 1}
    return {"sent": len(outcome.sent), "retried": len(outcome.retried),
            "failed": len(outcome.failed), "dropped": len(outcome.dropped)}  # fmt: skip


@celery.task(name="mail.daily_summaries")
def daily_summaries() -> int:
    """Yesterday's sales summary to every partner that wants one (once per partner and day)."""
    from app.models.base import utcnow
    from app.services.mail import partner_mails

    return partner_mails.queue_daily_summaries(db.session, utcnow())
