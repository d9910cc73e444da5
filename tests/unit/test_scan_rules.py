"""The Python scan rule (``rules.decide_entry``, ``rules.doors_open`` and the order in which
``scanning.evaluate`` applies them) answers every case of ``tests/cases/scan_rules.json``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from app.models.base import utcnow
from app.models.codes import TicketClaim, new_private_key, public_key_of, sign_ticket
from app.services.checkin.rules import EventInfo, ScanRequest, decide_entry, parse_scan
from app.services.checkin.scanners import Scanner
from app.services.checkin.scanning import evaluate
from tests.cases import check_in_window, scan_rule_cases

KEY = new_private_key()
EVENT_ID, TICKET_ID = 42, 7


class OneTicketStore:
    """One ticket's event, revocation and entry as a row of the table states them; the entry
    moves by ``decide_entry``, as the database store moves its row."""

    def __init__(self, row: dict[str, Any], now: dt.datetime) -> None:
        opens, closes = check_in_window(row["doors"], now)
        self.info = EventInfo(
            EVENT_ID, 1, public_key_of(KEY), opens, closes, row["allow_reentry"], row["cancelled"]
        )
        self.revoked = row["revoked"]
        self.state = None if row["before"] == "none" else row["before"]

    def event_info(self, event_id: int) -> EventInfo:
        return self.info

    def is_revoked(self, event_id: int, ticket_id: int) -> bool:
        return self.revoked

    def ticket_details(self, event_id: int, ticket_id: int) -> dict[str, Any]:
        return {}

    def enter(
        self, info: EventInfo, ticket_id: int, request: ScanRequest, nonce: str
    ) -> tuple[str, str | None, str | None]:
        result, self.state = decide_entry(self.state, request.direction, info.allow_reentry)
        return result, None, None


@pytest.mark.parametrize("row", scan_rule_cases())
def test_the_python_rule_answers_each_case_as_the_table_says(row):
    now = utcnow()
    store = OneTicketStore(row, now)
    code = sign_ticket(KEY, TicketClaim(EVENT_ID, TICKET_ID, "A-1"))
    request = parse_scan(
        {"code": code, "gate": "North", "direction": row["direction"], "nonce": "rule-0001"},
        now=now,
    )
    outcome = evaluate(store, Scanner(1, frozenset({EVENT_ID}), device_id=1), request, now)
    assert (outcome.result, outcome.details.get("reason")) == (row["result"], row["reason"])
    assert (store.state or "none") == row["after"]
