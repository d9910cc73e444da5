"""Writing report files in the background; a report already written is left alone, one a dead
worker left half-written is written again."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import current_app

from app.extensions import db
from app.models.base import utcnow
from app.services import reports
from app.tasks import celery


@celery.task(name="reports.generate", acks_late=True, reject_on_worker_lost=True)
def generate(report_id: int) -> str:
    directory = Path(current_app.config["REPORTS_DIR"])
    return reports.generate_report(db.session, report_id, directory).status


@celery.task(name="reports.delete_old_files")
def delete_old_files() -> int:
    directory = Path(current_app.config["REPORTS_DIR"])
    return reports.delete_old_files(db.session, directory)


@celery.task(name="reports.resend_lost")
def resend_lost() -> list[int]:
    """Every minute: the task sent again for reports whose task was lost (services/reports,
    ``resend_lost``)."""
    grace = dt.timedelta(minutes=current_app.config["LOST_TASK_GRACE_MINUTES"])
    return reports.resend_lost(db.session, utcnow(), grace)
