"""Refunding a cancelled event's orders in the background (resumable, never twice)."""

from app.extensions import db
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
