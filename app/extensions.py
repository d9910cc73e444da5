"""Extension singletons, bound to the app in ``create_app``."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery
from flask_appbuilder import Model
from flask_appbuilder.models.sqla.base import SQLA
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine, Pool, event
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError

# Requests are short and own their session: objects stay readable after a commit instead of
# being reloaded attribute by attribute (most of the purchase path's queries otherwise).
db = SQLA(model_class=Model, session_options={"expire_on_commit": False})
migrate = Migrate()
csrf = CSRFProtect()
# The Celery app: services send tasks through it by name, app/tasks binds it to Flask and
# registers the tasks (which call the services), so imports point one way.
celery = Celery("bilheteria")

log = logging.getLogger(__name__)

_WROTE = "bilheteria_wrote"
_IDLE_SINCE = "bilheteria_idle_since"
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
    runs first; SQLAlchemy's rollback then finds no transaction and sends nothing.

    "Only read" means every statement sent through SQLAlchemy began with SELECT or SHOW. A
    SELECT that writes (set_config, SELECT ... INTO, a function with side effects, several
    statements in one string) or SQL sent on the raw DBAPI connection would be committed: the
    application sends none of these."""
    try:
        wrote = conn.info.pop(_WROTE, False)
        if wrote or conn.closed:
            return
        raw = conn.connection.dbapi_connection
    except SQLAlchemyError:  # the link failed (invalidated): the rollback cleans up as before
        return
    if raw is not None and raw.info.transaction_status == TransactionStatus.INTRANS:
        try:
            raw.commit()
        except Exception:  # noqa: BLE001 - the connection failed: the rollback goes on as before
            log.warning("commit of a read-only transaction failed", exc_info=True)


@event.listens_for(Pool, "checkin")
def _forget_write_on_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info.pop(_WROTE, None)
        record.info[_IDLE_SINCE] = time.monotonic()


_AUTOCOMMIT = "bilheteria_autocommit_engine"


def autocommit_engine(app: Any) -> Engine:
    """The app's engine (its pool) in autocommit, made once per app: a statement that is its
    own transaction, without a BEGIN and a COMMIT around it. Made anew each time, it cost a
    card's tokenization 140 µs (554 against 416 µs a statement, measured here)."""
    engine = app.extensions.get(_AUTOCOMMIT)
    if engine is None:
        with app.app_context():
            engine = db.engine.execution_options(isolation_level="AUTOCOMMIT")
        app.extensions[_AUTOCOMMIT] = engine
    return engine


def ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection before use only when it sat idle for ``idle_seconds``: one that
    died meanwhile (a database restart, a firewall's timeout) is replaced before the request
    uses it. SQLAlchemy's pool_pre_ping checks every checkout, a round trip that cost about a
    tenth of a purchase's CPU (bench/purchase_cost.py); a connection used moments ago is
    alive, and if the database went down in between, the request's error invalidates the
    whole pool at once."""

    @event.listens_for(engine.pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("a pooled connection died while idle") from exc
        if not alive:
            raise DisconnectionError("a pooled connection died while idle")
