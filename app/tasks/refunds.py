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


@celery.task(name="refunds.sweep_cancelled_events")
def sweep_cancelled_events() -> list[int]:
    """Hourly: send the refund task again for every cancelled event with orders still paid
    (a run refunds only what is still paid, so a task that was not lost costs nothing)."""
    event_ids = refunds.cancelled_events_with_paid_orders(db.session)
    db.session.rollback()
    for event_id in event_ids:
        refund_cancelled_event.delay(event_id)
    return event_ids
