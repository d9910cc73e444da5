"""Work that must happen only once a transaction has committed, and never if it rolls back:
sending a Celery task about rows it wrote, telling Redis of a change, caching ids it created.

One mechanism for every such case: ``after_commit(session, callback)`` keeps the callback on the
session until its transaction ends; the commit runs them in order, a rollback drops them. A
task sent before the commit could run before its rows are visible (or for rows that never
exist); one sent after a plain ``commit()`` call is lost when the caller forgets it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from app import metrics
from app.extensions import celery

log = logging.getLogger(__name__)

_PENDING = "after_commit"
_COMMITTED = "after_commit_committed"


def after_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run ``callback`` once the session's current transaction commits (not at all if it rolls
    back). A callback that fails is logged: the commit has happened and stays."""
    session.info.setdefault(_PENDING, []).append(callback)


# After the broker refused a task, this process sends none for this long: each send would
# first spend kombu's retries (about 0.7 s with Redis refusing connections) inside a request.
# Every task sent through ``enqueue`` has a sweep that sends it again (mail.send_due,
# reports.resend_lost, refunds.resend_lost), so a task not sent now is late, not lost.
BROKER_PAUSE_SECONDS = 10.0
_broker_paused_until = 0.0


def enqueue(session: Session, task_name: str, *args: object) -> None:
    """Send the Celery task ``task_name`` with ``args`` once the transaction commits. By name:
    services do not import the task modules, which import the services. While the broker is
    down it is not sent (see BROKER_PAUSE_SECONDS): its sweep sends it later."""
    after_commit(session, lambda: _send(task_name, args))


def enqueue_again(session: Session, task_name: str, *args: object) -> None:
    """``enqueue``, for a task a sweep sends again because the first one was lost: counted,
    once sent, in ``bilheteria_tasks_resent_total``."""

    def send() -> None:
        if _send(task_name, args):
            metrics.count_resent(task_name)

    after_commit(session, send)


def _send(task_name: str, args: tuple[object, ...]) -> bool:
    """Send the task unless the broker failed moments ago; whether it was sent."""
    global _broker_paused_until
    if time.monotonic() < _broker_paused_until:
        log.info("broker down: task %s left to its sweep", task_name)
        return False
    try:
        celery.tasks[task_name].delay(*args)
    except KombuOperationalError:
        _broker_paused_until = time.monotonic() + BROKER_PAUSE_SECONDS
        log.warning(
            "broker down: task %s left to its sweep; no task is sent for %.0f s",
            task_name, BROKER_PAUSE_SECONDS, exc_info=True,
        )  # fmt: skip
        return False
    return True


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    # The session cannot run SQL inside this hook, and an in-process task (no broker) does:
    # the callbacks run when the transaction has ended, below.
    session.info[_COMMITTED] = session.info.get(_COMMITTED, []) + session.info.pop(_PENDING, [])


@event.listens_for(Session, "after_transaction_end")
def _run_committed(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    for callback in session.info.pop(_COMMITTED, []):
        try:
            callback()
        except Exception:  # noqa: BLE001 - the transaction is committed whatever a callback does
            log.exception("after-commit callback %r failed", callback)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
