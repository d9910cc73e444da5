"""Behind PgBouncer in transaction mode (ops/cluster.py) a server connection is lent for one
transaction: the app must hold no state of a session across transactions, and must not send
what PgBouncer refuses. The concurrency tests run once through a real PgBouncer
(`make test-pgbouncer`, tests/integration/test_pgbouncer.py); these check the settings and that
no session-level statement creeps into the code."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import load_config

APP = Path(__file__).resolve().parents[2] / "app"

# Statements whose effect outlives the transaction on the server connection.
SESSION_STATE = re.compile(
    r"pg_advisory_lock|pg_advisory_unlock|\bLISTEN\b|\bUNLISTEN\b|\bPREPARE\s+\w|"
    r"CREATE\s+(?:GLOBAL\s+|LOCAL\s+)?TEMP|WITH\s+HOLD|"
    r"set_config\(|(?:^|[\"';(])\s*SET\s+(?!LOCAL\b)(?:SESSION\s+)?[a-z_]+\s*(?:=|TO\b)",
)


def _settings(**env: str) -> dict:
    return load_config({"APP_ENV": "test", "DATABASE_URL": "postgresql://x@h/db_test", **env})


def test_behind_pgbouncer_the_app_prepares_nothing_and_sends_no_startup_options() -> None:
    args = _settings(DB_PGBOUNCER="true")["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]
    assert args["prepare_threshold"] is None
    assert "options" not in args


def test_straight_to_postgresql_the_lock_timeout_is_a_startup_option() -> None:
    args = _settings(LOCK_TIMEOUT_MS="1500")["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]
    assert args["options"] == "-c lock_timeout=1500"
    assert "prepare_threshold" not in args


def test_the_pattern_finds_session_state() -> None:
    for statement in (
        "SELECT pg_advisory_lock(42)",
        "LISTEN orders",
        "SET lock_timeout = 100",
        'text("SET SESSION statement_timeout TO 5")',
        "SELECT set_config('lock_timeout', '1s', false)",
        "CREATE TEMP TABLE t (x int)",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    ):
        assert SESSION_STATE.search(statement), statement
    for statement in ("SET LOCAL lock_timeout = 100", "ON DELETE SET NULL", "UPDATE t SET a = 1"):
        assert not SESSION_STATE.search(statement), statement


def test_no_statement_of_the_app_keeps_state_in_the_session() -> None:
    found = [
        f"{path.relative_to(APP)}:{number}: {line.strip()}"
        for path in APP.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SESSION_STATE.search(line) and not line.lstrip().startswith("#")
    ]
    assert found == []
