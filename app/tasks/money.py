"""Settlement and payouts in the background: each run is idempotent by unique keys (a day's
settlement, a ledger cause, a payout item's transaction), so a retried or replayed task posts
nothing twice."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.extensions import db
from app.models.base import utcnow
from app.services import payouts, settlement
from app.services.payments import gateway
from app.tasks import celery


@celery.task(name="money.reconcile_settlements", acks_late=True, reject_on_worker_lost=True)
def reconcile_settlements(day: str | None = None) -> list[dict[str, Any]]:
    """Every day not reconciled yet, or the given day (ISO date) on demand."""
    if day is not None:
        wanted = dt.date.fromisoformat(day)
        return [settlement.reconcile_day(db.session, gateway(), wanted, utcnow())]
    return settlement.reconcile_due_days(db.session, gateway(), utcnow())


@celery.task(name="money.create_payouts", acks_late=True, reject_on_worker_lost=True)
def create_payouts() -> list[int]:
    return payouts.create_payouts(db.session, utcnow())
