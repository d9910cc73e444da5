"""Card numbers and CVCs are kept nowhere: not in any table, not in any log line.

Each test buys with one of the simulated acquirer's test cards (through the JSON API, and once
through the no-JavaScript forms) with logging at DEBUG: the app's own JSON handler on stderr
(captured with capfd), every record on the root logger (caplog), SQL statements with their
parameters included. Then every value of every table, and every captured line, is searched.

The full number is searched as typed, and with the spaces and dashes between digits taken out of
the searched text. A 3-digit CVC cannot be searched as a bare substring (ids, timestamps and
random tokens contain any 3 digits), so it is searched where a leak would put it: as a value of
its own in a table, next to a "cvc"-like word, or as a quoted value (SQL parameters, reprs and
JSON of a request body).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import MetaData, Table, inspect, select

from app.extensions import db
from app.models.base import utcnow
from tests.support.shop import (
    APPROVED,
    DECLINED,
    NO_FUNDS,
    PROCESSING_ERROR,
    hold_seats,
    pay,
    sign_up,
)

CVC = "987"
HOLDER = "Ana Souza"
# Each card is typed the way people type them (the acquirer strips spaces and dashes).
TYPED = {
    APPROVED: "4242 4242 4242 4242",
    DECLINED: "4000-0000-0000-0002",
    NO_FUNDS: "4000 0000 0000 9995",
    PROCESSING_ERROR: "4000000000000119",
}
# A number the acquirer refuses (bad check digit): refused input must not be kept either.
REFUSED = "4242424242424241"
STANDARD_RECORD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
CVC_NEAR_A_NAME = re.compile(rf"(?i)(cvc|cvv|csc|security.?code)\W{{0,12}}{CVC}(?!\d)")
CVC_QUOTED = re.compile(rf"""['"]{CVC}['"]""")
CVC_ALONE = re.compile(rf"(?<![0-9A-Za-z]){CVC}(?![0-9A-Za-z])")
CARD_COLUMN_NAME = re.compile(r"(?i)(cvc|cvv|csc|card_?number|^pan$|^number$)")


# ---------------------------------------------------------------------------------------------
# What is searched


@dataclass
class Cell:
    table: str
    column: str
    value: str
    is_key: bool  # a primary or foreign key: an id, never card data


def database_cells() -> list[Cell]:
    """Every value of every table (the simulated acquirer's included), as text."""
    db.session.rollback()
    cells = []
    with db.engine.connect() as conn:
        tables = inspect(conn).get_table_names()
        assert {"payment", "sim_acquirer_token", "sim_acquirer_charge"} <= set(tables)
        for name in tables:
            table = Table(name, MetaData(), autoload_with=conn)
            keys = {c.name for c in table.columns if c.primary_key or c.foreign_keys}
            for row in conn.execute(select(table)):
                for column, value in row._mapping.items():
                    if value is None:
                        continue
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value).decode("utf-8", "replace")
                    cells.append(Cell(name, column, str(value), column in keys))
    return cells


def record_texts(records: list[logging.LogRecord]) -> list[str]:
    """Each record's message, arguments, extra fields and traceback."""
    texts = []
    for record in records:
        try:
            texts.append(record.getMessage())
        except Exception:  # noqa: BLE001 - a badly formatted record still gets searched
            texts.append(str(record.msg))
        texts.append(repr(record.args))
        texts.extend(
            f"{key}={value!r}"
            for key, value in vars(record).items()
            if key not in STANDARD_RECORD_ATTRS
        )
        if record.exc_info and not record.exc_text:
            texts.append(logging.Formatter().formatException(record.exc_info))
        if record.exc_text:
            texts.append(record.exc_text)
    return texts


def _digits_joined(text: str) -> str:
    return re.sub(r"(?<=\d)[ \-](?=\d)", "", text)


def number_leaks(where: str, text: str, numbers: list[str]) -> list[str]:
    joined = _digits_joined(text)
    found = []
    for number in numbers:
        for form in {number, _digits_joined(number)}:
            if form in text or form in joined:
                found.append(f"{where}: card number {number}")
    return found


def log_leaks(where: str, text: str, numbers: list[str]) -> list[str]:
    found = number_leaks(where, text, numbers)
    for pattern in (CVC_NEAR_A_NAME, CVC_QUOTED):
        for match in pattern.finditer(text):
            context = text[max(0, match.start() - 60) : match.end() + 60]
            found.append(f"{where}: CVC in {context!r}")
    return found


def scan_database(numbers: list[str]) -> tuple[list[str], list[Cell]]:
    cells = database_cells()
    found = []
    for cell in cells:
        where = f"{cell.table}.{cell.column}"
        found.extend(number_leaks(where, cell.value, numbers))
        if not cell.is_key and (CVC_ALONE.search(cell.value) or CVC_NEAR_A_NAME.search(cell.value)):
            found.append(f"{where}: CVC in {cell.value[:120]!r}")
    return found, cells


# ---------------------------------------------------------------------------------------------
# Capturing the logs


class _CurrentStderr:
    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@dataclass
class Captured:
    caplog: pytest.LogCaptureFixture
    capfd: pytest.CaptureFixture[str]

    def read(self) -> tuple[list[str], str]:
        """(texts of every record on the root logger, everything written to stdout and stderr)."""
        out, err = self.capfd.readouterr()
        return record_texts(self.caplog.records), out + err


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[Captured]:
    """DEBUG everywhere, and the app's own JSON log handler writing to this test's stderr.

    The session's migration ran Alembic's logging config, which replaced the app's handler and
    pinned SQLAlchemy's logger at WARN: both are set back as the app configures them."""
    from flask import Flask

    from app.observability import configure_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    caplog.set_level(logging.DEBUG)  # first, so that caplog restores the level it finds now
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    probe = Flask("log-probe")
    probe.config.update(LOG_JSON=True, LOG_LEVEL="DEBUG")
    configure_logging(probe)  # the app's handler, formatter and filter
    for handler in root.handlers:
        if getattr(handler, "_bilheteria", False):
            # pytest swaps the captured stderr between setup and call: write to the current one.
            handler.setStream(_CurrentStderr())
    yield Captured(caplog, capfd)
    root.handlers[:] = handlers
    root.setLevel(level)


# ---------------------------------------------------------------------------------------------
# Buying


def tokenize_json(client, typed_number: str) -> Any:
    return client.post(
        "/sim-acquirer/v1/tokens",
        json={
            "number": typed_number,
            "exp_month": 12,
            "exp_year": utcnow().year + 2,
            "cvc": CVC,
            "holder_name": HOLDER,
        },
    )


def assert_kept_nowhere(logs: Captured, numbers: list[str], last4s: list[str]) -> None:
    found, cells = scan_database(numbers)
    texts, output = logs.read()
    for index, text in enumerate(texts):
        found.extend(log_leaks(f"log record text {index}", text, numbers))
    for index, line in enumerate(output.splitlines()):
        found.extend(log_leaks(f"stdout/stderr line {index}", line, numbers))
    assert found == [], "\n".join(found)
    # The searches look where card data would be: they do see what is kept of the card...
    kept = {c.value for c in cells if (c.table, c.column) == ("payment", "card_last4")}
    assert set(last4s) <= kept, kept
    assert any(c.table == "sim_acquirer_token" and c.value == HOLDER for c in cells)
    # ... and the logs of the purchase, in both captures, SQL parameters included.
    assert any("'" + last4s[-1] + "'" in text for text in texts), "no SQL parameters logged"
    assert any('"logger"' in line and "sim_acquirer_token" in line for line in output.splitlines())


# ---------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize(
    ("number", "status"),
    [(APPROVED, 201), (DECLINED, 402), (NO_FUNDS, 402), (PROCESSING_ERROR, 402)],
    ids=["approved", "declined", "insufficient_funds", "processing_error"],
)
def test_an_api_purchase_keeps_no_card_number_or_cvc(client, on_sale, logs, number, status):
    headers = sign_up(client)
    hold = hold_seats(client, headers, on_sale)
    refused = tokenize_json(client, REFUSED)
    assert refused.status_code == 422 and refused.get_json()["field"] == "number"
    assert REFUSED not in refused.get_data(as_text=True)
    token = tokenize_json(client, TYPED[number])
    assert token.status_code == 201, token.get_json()
    card = token.get_json()
    assert card["last4"] == number[-4:] and "number" not in card and "cvc" not in card
    paid = pay(client, headers, hold["id"], card["token"])
    assert paid.status_code == status, paid.get_json()
    if status == 201:
        assert logs.caplog.records and any(
            r.getMessage() == "order paid" for r in logs.caplog.records
        )
    assert_kept_nowhere(logs, [number, REFUSED], [number[-4:]])


def test_a_purchase_through_the_pages_keeps_no_card_number_or_cvc(client, on_sale, logs):
    password = "Ingresso-Azul-77"
    client.post("/signup", data={"name": HOLDER, "email": "ana@example.com", "password": password})
    hold = client.post(
        f"/events/{on_sale.id}/hold", data={"section_id": on_sale.sections[0].id, "quantity": 2}
    )
    hold_path = urlsplit(hold.headers["Location"]).path
    card = {
        "exp_month": "12",
        "exp_year": str(utcnow().year + 2),
        "cvc": CVC,
        "holder_name": HOLDER,
        "return_url": hold_path,
    }
    seen = []  # every answer after card data was sent: none may echo it back
    for number in (REFUSED, TYPED[DECLINED], TYPED[APPROVED]):
        back = client.post("/sim-acquirer/v1/tokens", data={"number": number, **card})
        assert back.status_code == 303
        location = back.headers["Location"]
        page = client.get(location)
        seen += [location, page.get_data(as_text=True)]
        if number == REFUSED:
            assert "card_error" in location
            continue
        token = re.search(r'name="card_token" value="([^"]+)"', seen[-1]).group(1)
        key = re.search(r'name="idempotency_key" value="([^"]+)"', seen[-1]).group(1)
        paid = client.post(
            f"{hold_path}/checkout", data={"card_token": token, "idempotency_key": key}
        )
        landed = urlsplit(paid.headers["Location"]).path
        assert landed == hold_path if number == TYPED[DECLINED] else landed.startswith("/orders/")
        seen.append(client.get(landed).get_data(as_text=True))
    assert "order paid" in [r.getMessage() for r in logs.caplog.records]
    numbers = [APPROVED, DECLINED, REFUSED]
    for index, text in enumerate(seen):
        assert log_leaks(f"response {index}", text, numbers) == []
    assert_kept_nowhere(logs, numbers, [DECLINED[-4:], APPROVED[-4:]])


def test_the_scan_finds_a_leak_when_there_is_one(client, logs):
    """The searches themselves can fail: a planted number and CVC are found."""
    logging.getLogger("app.leaky").debug("card %s", {"number": APPROVED, "cvc": CVC})
    texts, output = logs.read()
    in_records = [leak for text in texts for leak in log_leaks("record", text, [APPROVED])]
    in_stderr = [
        leak for line in output.splitlines() for leak in log_leaks("line", line, [APPROVED])
    ]
    for found in (in_records, in_stderr):
        assert any("card number" in leak for leak in found), found
        assert any("CVC" in leak for leak in found), found
    assert number_leaks("cell", "4242-4242 4242-4242", [APPROVED])
    assert CVC_ALONE.search("cvc:987") and not CVC_ALONE.search("tok_a987b")


def test_no_column_is_named_for_card_data(client):
    db.session.rollback()
    with db.engine.connect() as conn:
        inspector = inspect(conn)
        named = [
            f"{table}.{column['name']}"
            for table in inspector.get_table_names()
            for column in inspector.get_columns(table)
            if CARD_COLUMN_NAME.search(column["name"])
        ]
    assert named == []
    assert CARD_COLUMN_NAME.search("card_number")
