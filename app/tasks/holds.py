"""Periodic purchase-path chores: free expired holds, finish or refund unfinished payments."""

from app.extensions import db
from app.models.base import utcnow
from app.services import purchase
from app.services.payments import gateway
from app.tasks import celery


@celery.task(name="holds.release_expired")
def release_expired_holds() -> int:
    return purchase.release.release_expired_holds(db.session)


@celery.task(name="payments.reconcile")
def reconcile_payments() -> dict[str, int]:
    return purchase.reconcile.reconcile_payments(db.session, gateway(), utcnow())
