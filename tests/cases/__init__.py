"""Tables of cases shared by the tests of every copy of a rule, in Python and in other languages
(``tests/js/`` reads the same files)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


def scan_rule_cases() -> list[Any]:
    """The rows of ``scan_rules.json`` as pytest params, each named by what it states."""
    rows = json.loads((HERE / "scan_rules.json").read_text(encoding="utf-8"))["cases"]
    return [pytest.param(row, id=case_name(row)) for row in rows]


def case_name(row: dict[str, Any]) -> str:
    facts = [
        row["before"],
        row["direction"],
        "reentry" if row["allow_reentry"] else "once",
        *(["revoked"] if row["revoked"] else []),
        *([f"doors {row['doors']}"] if row["doors"] != "open" else []),
        *(["cancelled"] if row["cancelled"] else []),
    ]
    return " ".join(facts) + f" -> {row['result']}"


def check_in_window(doors: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(opens, closes) of an event whose doors are ``doors`` at ``now``."""
    hour = dt.timedelta(hours=1)
    return {
        "open": (now - hour, now + hour),
        "not_yet": (now + hour, now + 2 * hour),
        "closed": (now - 2 * hour, now - hour),
    }[doors]
