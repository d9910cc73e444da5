"""Writing report files in the background; a report already written is left alone, one a dead
worker left half-written is written again."""

from __future__ import annotations

from pathlib import Path

from flask import current_app

from app.extensions import db
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
