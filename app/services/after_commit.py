"""Work that must happen only once a transaction has committed, and never if it rolls back:
sending a Celery task about rows it wrote, telling Redis of a change, caching ids it created.

One mechanism for every such case: ``after_commit(session, callback)`` keeps the callback on the
session until its transaction ends; the commit runs them in order, a rollback drops them. A
task sent before the commit could run before its rows are visible (or for rows that never
exist); one sent after a plain ``commit()`` call is lost when the caller forgets it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

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


def enqueue(session: Session, task_name: str, *args: object) -> None:
    """Send the Celery task ``task_name`` with ``args`` once the transaction commits. By name:
    services do not import the task modules, which import the services."""
    after_commit(session, lambda: celery.tasks[task_name].delay(*args))


def enqueue_again(session: Session, task_name: str, *args: object) -> None:
    """``enqueue``, for a task a sweep sends again because the first one was lost: counted,
    once sent, in ``bilheteria_tasks_resent_total``."""

    def send() -> None:
        celery.tasks[task_name].delay(*args)
        metrics.count_resent(task_name)

    after_commit(session, send)


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
