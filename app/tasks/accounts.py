"""Account tasks: the worker's part of asking for a password-reset link (see
app/services/password_reset.py: the request only hands the typed address over, so that its
answer takes as long for every address)."""

from app.extensions import db
from app.services import password_reset
from app.tasks import celery


@celery.task(name=password_reset.REQUEST_TASK)
def request_reset(email: str) -> None:
    password_reset.request_reset(db.session, email)
