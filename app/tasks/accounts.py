"""Account chores: the tokens of expired password-reset links taken out of their mails."""

from app.extensions import db
from app.services import password_reset
from app.tasks import celery


@celery.task(name="accounts.forget_spent_reset_tokens")
def forget_spent_reset_tokens() -> int:
    return password_reset.forget_spent_tokens(db.session)
