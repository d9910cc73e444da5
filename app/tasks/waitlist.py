"""Waiting lists: offers when spots come back, and the minute's sweep (services/waitlist.py)."""

from app.extensions import db
from app.services import waitlist
from app.tasks import celery


@celery.task(name=waitlist.OFFER_TASK)
def offer(event_id: int) -> int:
    """Spots of the event came back (sent after the commit that freed them)."""
    return waitlist.make_offers(db.session, event_id)


@celery.task(name="waitlist.sweep")
def sweep() -> int:
    """Every minute: offers for every event whose lists wait (holds that expired without
    anyone releasing them, an offer task the broker lost)."""
    return waitlist.sweep(db.session)
