"""Settlement and payouts in the background: each run is idempotent by unique keys (a day's
settlement, a ledger cause, a payout item's transaction), so a retried or replayed task posts
nothing twice. Finance's "run now" (dashboard and `flask money`) calls the same functions
(services/money_runs.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.extensions import db
from app.services import money_runs
from app.tasks import celery


@celery.task(name="money.reconcile_settlements", acks_late=True, reject_on_worker_lost=True)
def reconcile_settlements(day: str | None = None) -> list[dict[str, Any]]:
    """Every day not reconciled yet, or the given day (ISO date) on demand."""
    return money_runs.settle(db.session, dt.date.fromisoformat(day) if day is not None else None)


@celery.task(name="money.create_payouts", acks_late=True, reject_on_worker_lost=True)
def create_payouts() -> list[int]:
    return money_runs.payouts_now(db.session)
