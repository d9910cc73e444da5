"""Extension singletons, bound to the app in ``create_app``."""

from __future__ import annotations

from typing import Any

from flask_appbuilder import Model
from flask_appbuilder.models.sqla.base import SQLA
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import Connection, Engine, Pool, event

# Requests are short and own their session: objects stay readable after a commit instead of
# being reloaded attribute by attribute (most of the purchase path's queries otherwise).
db = SQLA(model_class=Model, session_options={"expire_on_commit": False})
migrate = Migrate()
csrf = CSRFProtect()

_WROTE = "bilheteria_wrote"
_READS = ("SELECT", "SHOW")


@event.listens_for(Engine, "before_cursor_execute")
def _note_write(
    conn: Connection, _cursor: Any, statement: str, *_args: Any, **_kwargs: Any
) -> None:
    if not conn.info.get(_WROTE) and not statement.lstrip()[:6].upper().startswith(_READS):
        conn.info[_WROTE] = True


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _forget_write(conn: Connection) -> None:
    conn.info.pop(_WROTE, None)


@event.listens_for(Pool, "checkin")
def _forget_write_on_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info.pop(_WROTE, None)


def end_read_only_transaction(exc: BaseException | None) -> None:
    """At the end of a request, commit a transaction that only read (a no-op for the database)
    instead of letting the session roll it back: psycopg forgets every prepared statement of the
    connection on ROLLBACK, and statements that are not prepared are planned again each time.
    A transaction that sent anything but SELECT, or a failed request, is rolled back as before."""
    if exc is not None or not db.session.registry.has():
        return
    session = db.session()
    if not session.in_transaction() or session.new or session.dirty or session.deleted:
        return
    connection = session.connection()
    if connection.info.get(_WROTE):
        return
    try:
        session.commit()
    except Exception:  # noqa: BLE001 - the connection failed: the teardown rolls back
        session.rollback()
