import pytest


@pytest.fixture(autouse=True)
def _database(db_context: None) -> None:
    """Every test here runs in an app context on the migrated database, emptied afterwards."""
