"""Refunding a cancelled event's orders in the background (resumable, never twice)."""

import datetime as dt

from flask import current_app

from app.extensions import db
from app.models.base import utcnow
from app.services import refunds
from app.services.payments import gateway
from app.tasks import celery


@celery.task(
    name="refunds.cancelled_event",
    acks_late=True,
    reject_on_worker_lost=True,
    # The processor unreachable for some orders: again after 1, 2, 4 ... minutes (at most 30),
    # for about a day; a run refunds only what is still paid.
    autoretry_for=(refunds.RefundsUnfinished,),
    retry_backoff=60,
    retry_backoff_max=1800,
    max_retries=60,
)
def refund_cancelled_event(event_id: int) -> int:
    return refunds.refund_event_orders(db.session, gateway(), event_id)


@celery.task(name="refunds.resend_lost")
def resend_lost() -> list[int]:
    """Every minute: the refund task sent again for cancelled events whose task was lost
    (services/refunds.py, ``resend_lost``)."""
    grace = dt.timedelta(minutes=current_app.config["LOST_TASK_GRACE_MINUTES"])
    return refunds.resend_lost(db.session, utcnow(), grace)
