"""Delivering webhooks: an endpoint's due deliveries right after the commit that wrote them,
and the sweep of what is due (retries, lost tasks, claims of senders that died, check-ins the
database's trigger wrote). Neither raises: a delivery that could not go out carries its own
retry in its row (services/webhooks/sender.py)."""

from __future__ import annotations

import logging

from app.extensions import db
from app.services.webhooks import sender
from app.tasks import celery

log = logging.getLogger(__name__)


def _counts(outcome: sender.Outcome) -> dict[str, int]:
    return {"delivered": len(outcome.delivered), "retried": len(outcome.retried),
            "failed": len(outcome.failed)}  # fmt: skip


@celery.task(name="webhooks.send")
def send(endpoint_id: int) -> dict[str, int]:
    try:
        outcome = sender.send_endpoint(db.session, endpoint_id)
    except Exception:  # the database, say: the sweep sends them once it is back
        db.session.rollback()
        log.exception("webhooks of endpoint %s: the sender failed; the sweep tries again",
                      endpoint_id)  # fmt: skip
        return {"error": 1}
    return _counts(outcome)


@celery.task(name="webhooks.send_due")
def send_due() -> dict[str, int]:
    try:
        outcome = sender.send_due(db.session)
    except Exception:
        db.session.rollback()
        log.exception("the webhook sweep failed; it runs again at its next turn")
        return {"error": 1}
    return _counts(outcome)
