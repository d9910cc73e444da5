"""Celery: the app object and its binding to Flask. Tasks are thin wrappers around services."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.schedules import crontab
from flask import Flask, current_app, has_app_context

from app.extensions import celery


def init_celery(app: Flask) -> Celery:
    """Configure the shared Celery app from the Flask config; tasks run inside an app context and
    release their database session afterwards (Superset's pattern)."""
    from app.extensions import db

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            # A task run eagerly from inside an app (the embedded default) runs in that app, in
            # a context (and database session) of its own; a worker's task runs in ``app``.
            runs_in = current_app._get_current_object() if has_app_context() else app
            with runs_in.app_context():
                try:
                    return self.run(*args, **kwargs)
                finally:
                    db.session.remove()

    celery.Task = FlaskTask
    celery.conf.update(
        broker_url=app.config["CELERY_BROKER_URL"],
        result_backend=None,
        task_ignore_result=True,
        task_always_eager=app.config["CELERY_TASK_ALWAYS_EAGER"],
        task_eager_propagates=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Keep the app's logging (JSON lines with their extra fields) in the worker too.
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        # A dead worker's task is looked for every 10 s (kombu's default throttle, 10, would
        # scan only every 10th time: 100 s) and delivered again once CELERY_VISIBILITY_TIMEOUT
        # has passed since it was taken.
        broker_transport_options={
            "visibility_timeout": app.config["CELERY_VISIBILITY_TIMEOUT"],
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
        },
        timezone="UTC",
        beat_schedule={
            "release-expired-holds": {"task": "holds.release_expired", "schedule": 60.0},
            # Waiting lists offered what came back meanwhile (and what a lost task left).
            "waitlist-sweep": {"task": "waitlist.sweep", "schedule": 60.0},
            "reconcile-payments": {"task": "payments.reconcile", "schedule": 60.0},
            "checkin-flush-log": {"task": "checkin.flush_log", "schedule": 5.0},
            "checkin-arm-due": {"task": "checkin.arm_due", "schedule": 300.0},
            # Each day is reconciled once, after it is over: hourly only catches up sooner.
            "reconcile-settlements": {"task": "money.reconcile_settlements", "schedule": 3600.0},
            # A report's or a cancelled event's refund task the broker lost (its work not begun
            # LOST_TASK_GRACE_MINUTES after it was sent), or a refund run given up: sent again.
            "resend-lost-reports": {"task": "reports.resend_lost", "schedule": 60.0},
            "resend-lost-refunds": {"task": "refunds.resend_lost", "schedule": 60.0},
            # Mails due again after a failure, whose task was lost, or whose sender died.
            "mail-send-due": {"task": "mail.send_due", "schedule": 30.0},
            # Webhook deliveries due again, whose task was lost, or whose sender died, and the
            # check-ins written by the database's trigger (no task is sent for those).
            "webhooks-send-due": {"task": "webhooks.send_due", "schedule": 10.0},
            # Partners' daily sales summary: 10:00 UTC, 07:00 in São Paulo.
            "mail-daily-summaries": {
                "task": "mail.daily_summaries",
                "schedule": crontab(hour=10, minute=0),
            },
            "delete-old-report-files": {
                "task": "reports.delete_old_files",
                "schedule": crontab(hour=3, minute=30),
            },
            "create-payouts": {
                "task": "money.create_payouts",
                "schedule": crontab.from_string(app.config["PAYOUT_SCHEDULE"]),
            },
        },
    )
    app.extensions["celery"] = celery
    from app.tasks import task_metrics

    task_metrics.connect()
    from app.tasks import (  # noqa: F401 - registers tasks
        accounts,
        checkin,
        holds,
        mail,
        money,
        refunds,
        reports,
        waitlist,
        webhooks,
    )

    return celery
