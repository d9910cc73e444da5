"""Gate check-in chores: write the scans queued in Redis to the database, arm events due."""

from app.extensions import db
from app.services import checkin
from app.tasks import celery


@celery.task(name="checkin.flush_log")
def flush_scan_log() -> int:
    return checkin.flush_scan_log(db.session)


@celery.task(name="checkin.arm_due")
def arm_due_events() -> list[int]:
    if checkin.redis_client() is None:
        return []
    return checkin.arm_due_events(db.session)
