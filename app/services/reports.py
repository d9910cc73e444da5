"""Reports finance and partners export (DESIGN.md, "Money"): sales per event, a partner's
statement for a period, platform revenue per day, and the batch file of approved payouts.

A request is a Report row; a Celery task writes its file. Rows come from the database in chunks
(``yield_per``: a server-side cursor on PostgreSQL) and go to the CSV file or the write-only XLSX
workbook one by one, so memory stays flat whatever the number of rows; the file is written under
REPORTS_DIR and renamed into place once complete. Money is written as decimal strings made from
integer cents. Every figure comes from the ledger, read in one snapshot; a statement's closing
balance is checked against ``ledger.partner_balance`` at the period's end before the file is kept.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from flask import current_app
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.models import (
    KIND_LABELS,
    DomainError,
    Event,
    Forbidden,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    NotFound,
    Order,
    Partner,
    Payment,
    Payout,
    PayoutStatus,
    Report,
    ReportFormat,
    ReportKind,
    ReportStatus,
    Ticket,
    TicketStatus,
    TransactionKind,
)
from app.models.base import utcnow
from app.models.event import owned_event_ids
from app.services import ledger
from app.services.after_commit import enqueue
from app.services.ledger import entry_sum
from app.services.scoping import Actor, get_owned, is_platform_staff

log = logging.getLogger(__name__)

# Rows fetched from the database at a time.
CHUNK = 2000

# What a partner's users may ask for; platform staff (finance, admins) ask for every kind.
PARTNER_KINDS = (ReportKind.SALES, ReportKind.STATEMENT)
NEEDS_PERIOD = frozenset({ReportKind.STATEMENT, ReportKind.REVENUE})
# Reports about the platform as a whole, never about one partner.
PLATFORM_WIDE = frozenset({ReportKind.REVENUE})


class ReportMismatch(DomainError):
    """A report's totals disagree with the ledger: the file is not kept."""


@dataclass(frozen=True)
class Period:
    """Whole UTC days, ``start`` to ``end`` inclusive."""

    start: dt.date
    end: dt.date

    @property
    def since(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time.min)

    @property
    def until(self) -> dt.datetime:
        """The first moment after the period."""
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time.min)

    def covers(self, moment: ColumnElement[dt.datetime]) -> ColumnElement[bool]:
        return and_(moment >= self.since, moment < self.until)

    def params(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def of(cls, start: dt.date | None, end: dt.date | None, *, required: bool) -> Period | None:
        if start is None and end is None:
            if required:
                raise DomainError("Give the period's first and last day.", field="start")
            return None
        if start is None:
            raise DomainError("Give the period's first day.", field="start")
        if end is None:
            raise DomainError("Give the period's last day.", field="end")
        if end < start:
            raise DomainError("The period ends before it starts.", field="end")
        if end >= dt.date.max:  # the first moment after it would not be a date
            raise DomainError("The period's last day is too far away.", field="end")
        return cls(start, end)

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> Period | None:
        params = params or {}
        if not params.get("start"):
            return None
        return cls(dt.date.fromisoformat(params["start"]), dt.date.fromisoformat(params["end"]))


# -- requests ------------------------------------------------------------------------------------


def kinds_for(actor: Actor | None) -> list[ReportKind]:
    """The kinds of report the actor may request."""
    return list(ReportKind) if is_platform_staff(actor) else list(PARTNER_KINDS)


def request_report(
    session: Session,
    actor: Actor | None,
    kind: str,
    file_format: str,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    partner_id: int | None = None,
    now: dt.datetime,
) -> Report:
    """Record the request and, after the commit, have the task write the file (at once in the
    embedded default, where tasks run in-process)."""
    try:
        wanted = ReportKind(kind)
    except ValueError:
        raise DomainError("Choose a kind of report.", field="kind") from None
    try:
        fmt = ReportFormat(file_format)
    except ValueError:
        raise DomainError("Choose CSV or XLSX.", field="format") from None
    if wanted not in kinds_for(actor):
        raise Forbidden(
            f"Only finance requests {KIND_LABELS[wanted].lower()} reports.", field="kind"
        )
    period = Period.of(start, end, required=wanted in NEEDS_PERIOD)
    report = Report(
        kind=wanted.value,
        format=fmt.value,
        params=period.params() if period else {},
        partner_id=_partner_of_request(session, actor, wanted, partner_id),
        requested_by_id=getattr(actor, "id", None),
        status=ReportStatus.PENDING.value,
        created_at=now,
    )
    session.add(report)
    session.flush()  # its id, for the task sent once this commits
    enqueue(session, "reports.generate", report.id)
    session.commit()
    session.refresh(report)  # the task may have written it already
    return report


def _partner_of_request(
    session: Session, actor: Actor | None, kind: ReportKind, partner_id: int | None
) -> int | None:
    """A partner's user reports on its own partner; platform staff on the partner they choose,
    or on every partner."""
    if not is_platform_staff(actor):
        own = getattr(actor, "partner_id", None)
        if own is None:
            raise Forbidden("Your user belongs to no partner.")
        if partner_id not in (None, own):
            raise NotFound("Partner not found.", field="partner")
        return own
    if partner_id is None:
        return None
    if kind in PLATFORM_WIDE:
        raise DomainError(
            f"{KIND_LABELS[kind]} covers every partner: leave the partner empty.", field="partner"
        )
    return get_owned(session, Partner, partner_id, actor).id


def report_file(report: Report, directory: Path) -> Path:
    """The written file of a report (found through the caller's scope); NotFound until then."""
    if report.status == ReportStatus.EXPIRED:
        raise NotFound(
            f"The report's file was deleted after {current_app.config['REPORT_RETENTION_DAYS']} "
            "days: request the report again."
        )
    if report.status != ReportStatus.DONE or not report.file_name:
        raise NotFound("The report's file is not ready.")
    path = _path_of(report.file_name, directory)
    if not path.is_file():
        raise NotFound("The report's file is gone.")
    return path


def _path_of(file_name: str, directory: Path) -> Path:
    """Where a report's file is: its bare name under the directory (never elsewhere)."""
    return directory / Path(file_name).name


# A partial file older than this was left by a worker that died writing it.
PARTIAL_FILE_MAX_AGE = dt.timedelta(days=1)


def delete_old_files(session: Session, directory: Path, now: dt.datetime | None = None) -> int:
    """Delete the files of reports written more than REPORT_RETENTION_DAYS ago (the reports stay
    listed as expired; a new request writes a fresh file) and partial files that dead workers
    left; returns how many reports expired. The reports are marked first: a file that outlives
    a crash in between is an orphan, never a listed report without its file."""
    now = now or utcnow()
    kept_since = now - dt.timedelta(days=current_app.config["REPORT_RETENTION_DAYS"])
    old = session.scalars(
        select(Report).where(Report.status == ReportStatus.DONE, Report.finished_at < kept_since)
    ).all()
    files = [_path_of(report.file_name, directory) for report in old if report.file_name]
    for report in old:
        report.expire()
    session.commit()
    for path in files:
        path.unlink(missing_ok=True)
    if directory.is_dir():
        stale = now - PARTIAL_FILE_MAX_AGE
        for partial in directory.glob(".report-*.part"):
            written = dt.datetime.fromtimestamp(partial.stat().st_mtime, dt.UTC)
            if written.replace(tzinfo=None) < stale:
                partial.unlink(missing_ok=True)
    if old:
        log.info("report files deleted", extra={"reports": len(old)})
    return len(old)


# -- generation ----------------------------------------------------------------------------------


def generate_report(session: Session, report_id: int, directory: Path) -> Report:
    """Write the report's file (the task). A written report is left alone; one a dead worker left
    running is written again. A failure is recorded on the report for its reader to see."""
    report = session.get(Report, report_id)
    if report is None:
        raise NotFound(f"Report {report_id} not found.")
    if report.status == ReportStatus.DONE:
        return report
    report.start(utcnow())
    session.commit()
    try:
        file_name, rows = _write(session, report, directory)
    except Exception as exc:
        session.rollback()
        log.exception("report failed", extra={"report_id": report_id})
        message = exc.message if isinstance(exc, DomainError) else "The file could not be written."
        report.fail(message, utcnow())
        session.commit()
        return report
    report.finish(file_name, rows, utcnow())
    session.commit()
    log.info("report written", extra={"report_id": report_id, "rows": rows})
    return report


def _write(session: Session, report: Report, directory: Path) -> tuple[str, int]:
    kind = ReportKind(report.kind)
    period = Period.from_params(report.params)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"report-{report.id}.{report.format}"
    # One partial file per run: a second delivery of the task running at the same time must
    # not write into (or rename away) this one's.
    partial = directory / f".{name}.{uuid.uuid4().hex[:12]}.part"
    _begin_snapshot(session)
    try:
        columns, rows = BUILDERS[kind](session, report.partner_id, period)
        count = 0
        with _open_writer(partial, ReportFormat(report.format), KIND_LABELS[kind]) as writer:
            writer.writerow(columns)
            for row in rows:
                writer.writerow(row)
                count += 1
        os.replace(partial, directory / name)
    finally:
        partial.unlink(missing_ok=True)
    session.commit()  # ends the snapshot (and keeps ledger accounts created on first look)
    return name, count


def _begin_snapshot(session: Session) -> None:
    """Every query of a report sees the same committed state, even while others post: its
    totals and the ledger balances they are checked against agree."""
    session.commit()  # the isolation level applies only to a transaction not begun yet
    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def _stream(session: Session, query: Select[Any]) -> Iterator[Any]:
    """The query's rows, fetched CHUNK at a time (a server-side cursor)."""
    yield from session.execute(query.execution_options(yield_per=CHUNK))


# -- money and cells -----------------------------------------------------------------------------


def money(cents: int) -> str:
    """12345 -> '123.45', -5 -> '-0.05': integer arithmetic, never a float."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(int(cents)), 100)
    return f"{sign}{whole}.{frac:02d}"


_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: Any) -> Any:
    """A value as the files show it. Text that a spreadsheet would run as a formula (an event
    named '=HYPERLINK(...)') is quoted; amounts such as '-12.00' are left as they are."""
    if value is None:
        return ""
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
    """One write-only worksheet: each row goes to openpyxl's temporary file as it comes."""

    def __init__(self, title: str) -> None:
        self.book = Workbook(write_only=True)
        self._sheet = self.book.create_sheet(title[:31])

    def writerow(self, values: list[Any]) -> None:
        self._sheet.append([spreadsheet_cell(value) for value in values])


@contextmanager
def _open_writer(path: Path, fmt: ReportFormat, title: str) -> Iterator[_RowWriter]:
    if fmt == ReportFormat.CSV:
        with path.open("w", newline="", encoding="utf-8") as file:
            yield _CsvWriter(file)
        return
    writer = _XlsxWriter(title)
    yield writer
    writer.book.save(path)


# -- sales per event -----------------------------------------------------------------------------

SALES_COLUMNS = [
    "line", "event_id", "event", "partner", "currency", "order_id", "paid_at",
    "tickets", "tickets_refunded", "gross", "fees", "refunds", "chargebacks", "net",
]  # fmt: skip
SALES_FIGURES = ("tickets", "tickets_refunded", "gross", "fees", "refunds", "chargebacks", "net")
SALES_MONEY = frozenset({"gross", "fees", "refunds", "chargebacks", "net"})


def sales_query(session: Session, partner_id: int | None, period: Period | None) -> Select[Any]:
    """One row per paid order with money in the period, by event: its tickets, the gross the
    customer paid, the platform's fee kept (less what a refund gave back), refunds and
    chargebacks at their gross, and the partner's net, all from the ledger. Net = gross - fees -
    refunds - chargebacks, the order's part of the partner's balance."""
    clearing = ledger.account_id(session, ledger.CLEARING)
    fee_revenue = ledger.account_id(session, ledger.FEE_REVENUE)
    kind, account = LedgerTransaction.kind, LedgerEntry.account_id
    # Refunded tickets count in the period they were revoked in (an order refunded ticket by
    # ticket over several days counted all of them in each of those days).
    revoked = Ticket.status == TicketStatus.REVOKED
    if period is not None:
        revoked = and_(revoked, period.covers(Ticket.revoked_at))
    tickets = select(
        Ticket.order_id,
        func.count().label("issued"),
        func.count(case((revoked, 1))).label("revoked"),
    ).where(Ticket.status.in_((TicketStatus.VALID, TicketStatus.REVOKED)))
    if partner_id is not None:
        tickets = tickets.where(Ticket.event_id.in_(owned_event_ids(partner_id)))
    tickets = tickets.group_by(Ticket.order_id).subquery()
    query = (
        select(
            Event.id.label("event_id"),
            Event.name.label("event"),
            Partner.name.label("partner"),
            LedgerEntry.currency,
            Order.id.label("order_id"),
            Order.paid_at,
            # An order's tickets count in the period of its sale, their refund in that of the
            # refund.
            func.max(
                case((kind == TransactionKind.CAPTURE, func.coalesce(tickets.c.issued, 0)), else_=0)
            ).label("tickets"),
            func.max(
                case((kind.in_(ledger.REVERSES_SALE), func.coalesce(tickets.c.revoked, 0)), else_=0)
            ).label("tickets_refunded"),
            entry_sum(kind == TransactionKind.CAPTURE, account == clearing).label("gross"),
            (-entry_sum(account == fee_revenue)).label("fees"),
            (-entry_sum(kind == TransactionKind.REFUND, account == clearing)).label("refunds"),
            (-entry_sum(kind == TransactionKind.CHARGEBACK, account == clearing)).label(
                "chargebacks"
            ),
            (-entry_sum(LedgerAccount.partner_id.is_not(None))).label("net"),
        )
        .select_from(LedgerEntry)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .join(Payment, Payment.id == LedgerTransaction.payment_id)
        .join(Order, Order.id == Payment.order_id)
        .join(Event, Event.id == Order.event_id)
        .join(Partner, Partner.id == Event.partner_id)
        .outerjoin(tickets, tickets.c.order_id == Order.id)
        .where(kind.in_((TransactionKind.CAPTURE, *ledger.REVERSES_SALE)))
        .group_by(Event.id, Partner.id, LedgerEntry.currency, Order.id)
        # A capture for an order that could not be sold touches no partner: not a sale.
        .having(func.count(LedgerAccount.partner_id) > 0)
        .order_by(Event.id, LedgerEntry.currency, Order.id)
    )
    if partner_id is not None:
        query = query.where(Event.partner_id == partner_id)
    if period is not None:
        query = query.where(period.covers(LedgerTransaction.created_at))
    return query


def sales_rows(
    session: Session, partner_id: int | None, period: Period | None
) -> tuple[list[str], Iterator[list[Any]]]:
    def rows() -> Iterator[list[Any]]:
        event: list[Any] = []  # the current event's columns: id, name, partner, currency
        event_totals = dict.fromkeys(SALES_FIGURES, 0)
        totals: dict[str, dict[str, int]] = {}
        for row in _stream(session, sales_query(session, partner_id, period)):
            if event and (event[0], event[3]) != (row.event_id, row.currency):
                yield _sales_line("event total", event, None, None, event_totals)
                event_totals = dict.fromkeys(SALES_FIGURES, 0)
            event = [row.event_id, row.event, row.partner, row.currency]
            figures = {key: getattr(row, key) for key in SALES_FIGURES}
            currency_totals = totals.setdefault(row.currency, dict.fromkeys(SALES_FIGURES, 0))
            for key, value in figures.items():
                event_totals[key] += value
                currency_totals[key] += value
            yield _sales_line("order", event, row.order_id, row.paid_at, figures)
        if event:
            yield _sales_line("event total", event, None, None, event_totals)
        for currency, figures in sorted(totals.items()):
            yield _sales_line("total", [None, None, None, currency], None, None, figures)

    return SALES_COLUMNS, rows()


def _sales_line(
    line: str, event: list[Any], order_id: int | None, paid_at: Any, figures: dict[str, int]
) -> list[Any]:
    amounts = [money(figures[k]) if k in SALES_MONEY else figures[k] for k in SALES_FIGURES]
    return [line, *event, order_id, paid_at, *amounts]


# -- partner statement ---------------------------------------------------------------------------

STATEMENT_FIGURES = ("sales", "fees", "refunds", "chargebacks", "fees_returned", "payouts")
STATEMENT_COLUMNS = [
    "line", "partner_id", "partner", "currency", "posted_at", "transaction_id", "kind",
    "description", *STATEMENT_FIGURES, "change", "balance",
]  # fmt: skip


def statement_rows(
    session: Session, partner_id: int | None, period: Period | None
) -> tuple[list[str], Iterator[list[Any]]]:
    """Per partner and currency: the opening balance, every ledger transaction of the period
    touching the partner's payable (what it moved, by ``ledger.statement_columns``) with the
    running balance, and the closing line with the period's totals. The closing balance must
    equal ``ledger.partner_balance`` at the period's end."""
    assert period is not None  # a statement is always for a period (NEEDS_PERIOD)
    accounts = (
        select(LedgerAccount.id, Partner)
        .join(Partner, Partner.id == LedgerAccount.partner_id)
        .order_by(Partner.id)
    )
    if partner_id is not None:
        accounts = accounts.where(Partner.id == partner_id)

    def rows() -> Iterator[list[Any]]:
        # One payable account per partner: few rows, each streamed on its own below.
        found = session.execute(accounts).all()
        if not found and partner_id is not None:
            partner = session.get(Partner, partner_id)
            found = [(ledger.partner_account_id(session, partner.id, partner.name), partner)]
        for account, partner in found:
            currencies = session.scalars(
                select(LedgerEntry.currency)
                .distinct()
                .join(LedgerTransaction)
                .where(
                    LedgerEntry.account_id == account,
                    LedgerTransaction.created_at < period.until,
                )
                .order_by(LedgerEntry.currency)
            ).all()
            if not currencies and partner_id is not None:
                # Nothing posted yet: the partner's statement still says so, at zero.
                currencies = session.scalars(
                    select(Event.currency)
                    .distinct()
                    .where(Event.partner_id == partner.id)
                    .order_by(Event.currency)
                ).all()
            for currency in currencies:
                yield from _statement(session, account, partner, currency, period)

    return STATEMENT_COLUMNS, rows()


def _statement(
    session: Session, account: int, partner: Partner, currency: str, period: Period
) -> Iterator[list[Any]]:
    opening = ledger.partner_balance(session, partner, currency, before=period.since)
    who = [partner.id, partner.name, currency]
    yield ["opening", *who, period.since, None, None, "Opening balance",
           *[None] * len(STATEMENT_FIGURES), None, money(opening)]  # fmt: skip
    transactions = (
        select(
            LedgerTransaction.id,
            LedgerTransaction.created_at,
            LedgerTransaction.kind,
            func.coalesce(LedgerTransaction.memo, LedgerTransaction.cause_key).label("memo"),
            *ledger.statement_columns(session, account),
        )
        .select_from(LedgerEntry)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(
            LedgerEntry.transaction_id.in_(ledger.touching(account)),
            LedgerEntry.currency == currency,
            period.covers(LedgerTransaction.created_at),
        )
        .group_by(LedgerTransaction.id)
        .order_by(LedgerTransaction.created_at, LedgerTransaction.id)
    )
    totals = dict.fromkeys(STATEMENT_FIGURES, 0)
    running = opening
    for row in _stream(session, transactions):
        running += row.balance
        for key in STATEMENT_FIGURES:
            totals[key] += getattr(row, key)
        yield ["transaction", *who, row.created_at, row.id, row.kind, row.memo,
               *[money(getattr(row, key)) for key in STATEMENT_FIGURES],
               money(row.balance), money(running)]  # fmt: skip
    closing = ledger.partner_balance(session, partner, currency, before=period.until)
    if running != closing:
        raise ReportMismatch(
            f"{partner.name}'s statement closes at {money(running)} {currency}; the ledger"
            f" says {money(closing)}."
        )
    yield ["closing", *who, period.until, None, None, "Closing balance",
           *[money(totals[key]) for key in STATEMENT_FIGURES],
           money(closing - opening), money(closing)]  # fmt: skip


# -- platform revenue ----------------------------------------------------------------------------

REVENUE_FIGURES = ("fees_charged", "fees_returned", "fees_kept", "gateway_fees", "net")
REVENUE_COLUMNS = ["line", "day", "currency", *REVENUE_FIGURES]


def revenue_rows(
    session: Session, partner_id: int | None, period: Period | None
) -> tuple[list[str], Iterator[list[Any]]]:
    """Per UTC day and currency: the platform fees charged on sales, those given back by
    refunds and chargebacks, what was kept (the fee revenue account's movement), the acquirer's
    fees (the gateway fee expense account's) and the net, kept less gateway fees."""
    assert period is not None  # always for a period (NEEDS_PERIOD)
    fee_revenue = ledger.account_id(session, ledger.FEE_REVENUE)
    gateway_fees = ledger.account_id(session, ledger.GATEWAY_FEES)
    kind, account = LedgerTransaction.kind, LedgerEntry.account_id
    day = func.date(LedgerTransaction.created_at)
    query = (
        select(
            day.label("day"),
            LedgerEntry.currency,
            (-entry_sum(kind == TransactionKind.CAPTURE, account == fee_revenue)).label("charged"),
            entry_sum(kind != TransactionKind.CAPTURE, account == fee_revenue).label("returned"),
            entry_sum(account == gateway_fees).label("gateway"),
        )
        .select_from(LedgerEntry)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(
            account.in_((fee_revenue, gateway_fees)),
            period.covers(LedgerTransaction.created_at),
        )
        .group_by(day, LedgerEntry.currency)
        .order_by(day, LedgerEntry.currency)
    )

    def figures(charged: int, returned: int, gateway: int) -> list[str]:
        kept = charged - returned
        return [money(charged), money(returned), money(kept), money(gateway), money(kept - gateway)]

    def rows() -> Iterator[list[Any]]:
        totals: dict[str, list[int]] = {}
        for row in _stream(session, query):
            total = totals.setdefault(row.currency, [0, 0, 0])
            for index, value in enumerate((row.charged, row.returned, row.gateway)):
                total[index] += value
            yield [
                "day",
                str(row.day),
                row.currency,
                *figures(row.charged, row.returned, row.gateway),
            ]
        for currency, total in sorted(totals.items()):
            yield ["total", None, currency, *figures(*total)]

    return REVENUE_COLUMNS, rows()


# -- payout batch --------------------------------------------------------------------------------

PAYOUT_COLUMNS = [
    "line", "payout_id", "partner_id", "partner", "currency", "amount", "reference",
    "bank_reference", "approved_at",
]  # fmt: skip


def payout_batch_rows(
    session: Session, partner_id: int | None, period: Period | None
) -> tuple[list[str], Iterator[list[Any]]]:
    """The approved payouts, to transfer: each with the reference to quote on the transfer and
    an empty bank reference for finance to fill in; a total per currency."""
    query = (
        select(
            Payout.id,
            Payout.partner_id,
            Partner.name,
            Payout.currency,
            Payout.amount_cents,
            Payout.approved_at,
        )
        .join(Partner, Partner.id == Payout.partner_id)
        .where(Payout.status == PayoutStatus.APPROVED)
        .order_by(Payout.currency, Payout.id)
    )
    if partner_id is not None:
        query = query.where(Payout.partner_id == partner_id)

    def rows() -> Iterator[list[Any]]:
        totals: dict[str, list[int]] = {}
        for row in _stream(session, query):
            total = totals.setdefault(row.currency, [0, 0])
            total[0] += 1
            total[1] += row.amount_cents
            yield ["payout", row.id, row.partner_id, row.name, row.currency,
                   money(row.amount_cents), f"PAYOUT-{row.id}", None, row.approved_at]  # fmt: skip
        for currency, (count, amount) in sorted(totals.items()):
            yield ["total", None, None, f"{count} payout(s)", currency, money(amount),
                   None, None, None]  # fmt: skip

    return PAYOUT_COLUMNS, rows()


BUILDERS = {
    ReportKind.SALES: sales_rows,
    ReportKind.STATEMENT: statement_rows,
    ReportKind.REVENUE: revenue_rows,
    ReportKind.PAYOUT_BATCH: payout_batch_rows,
}
