"""Gate check-in chores: write the scans queued in Redis to the database, arm events due."""

from app.extensions import db
from app.services.checkin import arming, scan_log
from app.services.checkin.redis_keys import redis_client
from app.tasks import celery


@celery.task(name="checkin.flush_log")
def flush_scan_log() -> int:
    return scan_log.flush_scan_log(db.session)


@celery.task(name="checkin.arm_due")
def arm_due_events() -> list[int]:
    if redis_client() is None:
        return []
    return arming.arm_due_events(db.session)
