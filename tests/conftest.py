"""The suite's shared fixtures, as plugins of tests/support/: one migrated PostgreSQL database
per run, emptied after every test; Redis; the test client; the partners and events most tests
start from.

The database is DATABASE_URL's (CI names its server) or, when that is unset, a throwaway
embedded PostgreSQL started for the session when a test first needs the app
(tests/support/database.py): every test, the locking and concurrency ones included, runs on the
dialect production runs, and the unit tests start no server. Redis is REDIS_URL's or, when that
is unset, a redis-server on PATH started on a free port for the session; tests that need it
skip with the reason otherwise.
"""

import pytest

# Before the plugins import them: the helpers' failed assertions are explained as the tests' are.
pytest.register_assert_rewrite("tests.support")

pytest_plugins = [
    "tests.support.fixtures_app",
    "tests.support.fixtures_events",
    "tests.support.fixtures_gate",
    "tests.support.fixtures_money",
    "tests.support.fixtures_mail",
]
