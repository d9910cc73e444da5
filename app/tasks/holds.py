"""Hold expiry: a periodic task giving expired holds' spots back to sale."""

from app.extensions import db
from app.services import holds
from app.tasks import celery


@celery.task(name="holds.release_expired")
def release_expired_holds() -> int:
    return holds.release_expired_holds(db.session)
