"""Entry point for `celery -A app.tasks.worker worker|beat`: builds the app once per process."""

from celery.signals import worker_process_init

from app import create_app
from app.extensions import db

flask_app = create_app()
celery = flask_app.extensions["celery"]


@worker_process_init.connect
def _dispose_engine_after_fork(**_: object) -> None:
    # Connections must not be shared with the parent process after fork.
    with flask_app.app_context():
        db.engine.dispose(close=False)
