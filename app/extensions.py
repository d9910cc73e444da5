"""Extension singletons, bound to the app in ``create_app``."""

from __future__ import annotations

import logging
from typing import Any

from flask_appbuilder import Model
from flask_appbuilder.models.sqla.base import SQLA
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine, Pool, event

# Requests are short and own their session: objects stay readable after a commit instead of
# being reloaded attribute by attribute (most of the purchase path's queries otherwise).
db = SQLA(model_class=Model, session_options={"expire_on_commit": False})
migrate = Migrate()
csrf = CSRFProtect()

log = logging.getLogger(__name__)

_WROTE = "bilheteria_wrote"
_READS = ("SELECT", "SHOW")


@event.listens_for(Engine, "before_cursor_execute")
def _note_write(
    conn: Connection, _cursor: Any, statement: str, *_args: Any, **_kwargs: Any
) -> None:
    if not conn.info.get(_WROTE) and not statement.lstrip()[:6].upper().startswith(_READS):
        conn.info[_WROTE] = True


@event.listens_for(Engine, "commit")
def _forget_write(conn: Connection) -> None:
    conn.info.pop(_WROTE, None)


@event.listens_for(Engine, "rollback")
def _commit_what_only_read(conn: Connection) -> None:
    """End a transaction that only read with COMMIT rather than ROLLBACK (the same for the
    database: nothing to undo, row locks released either way). psycopg forgets every prepared
    statement of a connection on ROLLBACK, and statements that are not prepared are planned
    again each time: rolling back after reads (a request's end, a lock conflict, a refused
    hold) cost the database about a third of its CPU on the purchase path. The DBAPI commit
    runs first; SQLAlchemy's rollback then finds no transaction and sends nothing."""
    wrote = conn.info.pop(_WROTE, False)
    if wrote or conn.closed or conn.invalidated or conn.engine.dialect.name != "postgresql":
        return
    raw = conn.connection.dbapi_connection
    if raw is not None and raw.info.transaction_status == TransactionStatus.INTRANS:
        try:
            raw.commit()
        except Exception:  # noqa: BLE001 - the connection failed: the rollback goes on as before
            log.warning("commit of a read-only transaction failed", exc_info=True)


@event.listens_for(Pool, "checkin")
def _forget_write_on_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info.pop(_WROTE, None)
