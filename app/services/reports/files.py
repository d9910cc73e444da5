"""How a report's rows become a file: money made from integer cents (in CSV a decimal string,
"1234.56", for programs; in XLSX a number with the currency's format, "R$ 1.234,56" on screen,
that a SUM adds up), cells a spreadsheet will not run as formulas, and writers that take one
row at a time (CSV, or a write-only XLSX workbook), so memory stays flat whatever the number of
rows."""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from babel.numbers import get_currency_symbol
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from app.i18n import DEFAULT_LOCALE
from app.models import (
    ReportFormat,
)
from app.models.money import amount_from_cents

# -- money and cells -----------------------------------------------------------------------------


def money(cents: int) -> str:
    """12345 -> '123.45', -5 -> '-0.05': integer arithmetic, never a float."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(int(cents)), 100)
    return f"{sign}{whole}.{frac:02d}"


@dataclass(frozen=True)
class Money:
    """An amount in a report's row: integer cents and their currency. Each writer decides how it
    reads (``money`` text in CSV, a numeric cell with a currency format in XLSX)."""

    cents: int
    currency: str

    def __str__(self) -> str:
        return money(self.cents)


def currency_format(currency: str) -> str:
    """The spreadsheet number format of a currency: '"R$" #,##0.00' for BRL. The spreadsheet
    shows its marks as the reader's system writes them ("R$ 1.234,56" in Brazil)."""
    symbol = get_currency_symbol(currency, locale=DEFAULT_LOCALE).replace('"', "")
    return f'"{symbol}" #,##0.00'


_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: Any) -> Any:
    """A value as the files show it. Text that a spreadsheet would run as a formula (an event
    named '=HYPERLINK(...)') is quoted; amounts such as '-12.00' are left as they are."""
    if value is None:
        return ""
    if isinstance(value, Money):
        return money(value.cents)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        # Characters a spreadsheet drops go first: "\x01=HYPERLINK(...)" must not become live.
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        if value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
            return "'" + value
    return value


class _RowWriter(Protocol):
    def writerow(self, values: list[Any]) -> None: ...


class _CsvWriter:
    def __init__(self, file: Any) -> None:
        self._writer = csv.writer(file)

    def writerow(self, values: list[Any]) -> None:
        self._writer.writerow([spreadsheet_cell(value) for value in values])


class _XlsxWriter:
    """One write-only worksheet: each row goes to openpyxl's temporary file as it comes. Money
    is a numeric cell, Decimal(cents) / 100 exactly, with its currency's number format."""

    def __init__(self, title: str) -> None:
        self.book = Workbook(write_only=True)
        self._sheet = self.book.create_sheet(title[:31])

    def writerow(self, values: list[Any]) -> None:
        self._sheet.append([self._cell(value) for value in values])

    def _cell(self, value: Any) -> Any:
        if not isinstance(value, Money):
            return spreadsheet_cell(value)
        cell = WriteOnlyCell(self._sheet, value=amount_from_cents(value.cents))
        cell.number_format = currency_format(value.currency)
        return cell


@contextmanager
def open_writer(path: Path, fmt: ReportFormat, title: str) -> Iterator[_RowWriter]:
    if fmt == ReportFormat.CSV:
        with path.open("w", newline="", encoding="utf-8") as file:
            yield _CsvWriter(file)
        return
    writer = _XlsxWriter(title)
    yield writer
    writer.book.save(path)
