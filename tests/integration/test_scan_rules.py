"""The copies of the scan rule that run against a real server answer every case of
``tests/cases/scan_rules.json``: the database store on PostgreSQL, and in Redis the entry script
(``enter.lua``, through the Redis store) and the fast path's script (``fast_scan.lua``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from typing import Any

import pytest
import redis

from app.extensions import db
from app.models import CheckinEntry, EventStatus, Ticket, TicketStatus, token_hash
from app.models.base import utcnow
from app.models.codes import TicketClaim, new_private_key, public_key_of, sign_ticket
from app.services.checkin.arming import door_fields
from app.services.checkin.db_store import DbStore
from app.services.checkin.fast_path import fast_scan
from app.services.checkin.redis_keys import (
    device_key,
    entries_key,
    entry_value,
    event_key,
    read_entry,
    redis_for,
    revoked_key,
)
from app.services.checkin.redis_store import RedisStore
from app.services.checkin.rules import EventInfo, iso, parse_scan
from app.services.checkin.scanners import Scanner
from app.services.checkin.scanning import evaluate
from tests.cases import check_in_window, scan_rule_cases
from tests.support.builders import make_event, make_partner
from tests.support.database import forget_checkin_state
from tests.support.shop import buy

CASES = scan_rule_cases()


def scan_request(code: str, row: dict[str, Any]) -> dict[str, Any]:
    return {"code": code, "gate": "North", "direction": row["direction"], "nonce": uuid.uuid4().hex}


def answered(result: str, details: dict[str, Any]) -> tuple[str, str | None]:
    return result, details.get("reason")


@pytest.mark.usefixtures("db_context")
@pytest.mark.parametrize("row", CASES)
def test_the_database_store_answers_each_case_as_the_table_says(client, row):
    now = utcnow()
    event = make_event(make_partner("Aurora"), rows=("A", "A"), seats=1)
    event.publish()
    db.session.commit()
    ticket = buy(client, event, quantity=1)["tickets"][0]
    event.checkin_opens_at, event.checkin_closes_at = check_in_window(row["doors"], now)
    event.allow_reentry = row["allow_reentry"]
    if row["cancelled"]:
        event.status = EventStatus.CANCELLED.value
    if row["revoked"]:
        db.session.get(Ticket, ticket["id"]).status = TicketStatus.REVOKED.value
    if row["before"] != "none":
        first = now - dt.timedelta(minutes=30)
        db.session.add(
            CheckinEntry(
                ticket_id=ticket["id"],
                event_id=event.id,
                state=row["before"],
                first_at=first,
                first_gate="South",
                last_at=first,
            )
        )
    db.session.commit()
    scanner = Scanner(event.partner_id, frozenset({event.id}), device_id=1)
    request = parse_scan(scan_request(ticket["code"], row), now=now)

    outcome = evaluate(DbStore(db.session), scanner, request, now)
    db.session.commit()

    assert answered(outcome.result, outcome.details) == (row["result"], row["reason"])
    entry = db.session.get(CheckinEntry, ticket["id"], populate_existing=True)
    assert (entry.state if entry else "none") == row["after"]


KEY = new_private_key()
EVENT_ID, TICKET_ID = 4242, 7
TOKEN = "scan-rules-device-token"
CODE = sign_ticket(KEY, TicketClaim(EVENT_ID, TICKET_ID, "A-1"))
SCANNER = Scanner(1, frozenset({EVENT_ID}), device_id=1)


class ArmedEvent:
    """The table's event in Redis as arming leaves it, with no database behind it."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def arm(self, row: dict[str, Any], now: dt.datetime) -> None:
        opens, closes = check_in_window(row["doors"], now)
        info = EventInfo(
            EVENT_ID, 1, public_key_of(KEY), opens, closes, row["allow_reentry"], row["cancelled"]
        )
        fields = {"partner_id": 1, "public_key": info.public_key, **door_fields(info)}
        self.client.hset(event_key(EVENT_ID), mapping=fields)
        if row["revoked"]:
            self.client.sadd(revoked_key(EVENT_ID), TICKET_ID)
        if row["before"] != "none":
            first = entry_value(row["before"], iso(now - dt.timedelta(minutes=30)), "South")
            self.client.hset(entries_key(EVENT_ID), TICKET_ID, first)
        self.client.set(device_key(token_hash(TOKEN)), SCANNER.to_json())

    def state_after(self) -> str:
        raw = self.client.hget(entries_key(EVENT_ID), TICKET_ID)
        return read_entry(raw)[0] if raw else "none"


@pytest.fixture
def armed(app):
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("the Lua scripts run in Redis (REDIS_URL)")
    yield ArmedEvent(redis_for(url))
    forget_checkin_state(app)


@pytest.mark.parametrize("row", CASES)
def test_the_entry_script_answers_each_case_as_the_table_says(armed, row):
    now = utcnow()
    armed.arm(row, now)
    store = RedisStore(armed.client, session=None)  # armed: the store never needs the database
    request = parse_scan(scan_request(CODE, row), now=now)

    outcome = evaluate(store, SCANNER, request, now)

    assert answered(outcome.result, outcome.details) == (row["result"], row["reason"])
    assert armed.state_after() == row["after"]


@pytest.mark.parametrize("row", CASES)
def test_the_fast_path_script_answers_each_case_as_the_table_says(armed, row):
    armed.arm(row, utcnow())
    body = json.dumps(scan_request(CODE, row)).encode()

    answer = json.loads(fast_scan(armed.client, TOKEN, body))

    assert answered(answer["result"], answer) == (row["result"], row["reason"])
    assert armed.state_after() == row["after"]
