"""The money side after a sale: moving a day into the past so it can be settled, reconciling and
paying out with the tasks, the ledger's balances and sums, and reading the report files."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import LedgerEntry, LedgerTransaction, Payment, PaymentRefund
from app.models.base import utcnow
from app.services import ledger, payouts, refunds
from app.services.payments import gateway
from app.services.scoping import SYSTEM
from app.sim_acquirer.models import SimCharge, SimChargeback, SimRefund
from app.tasks import celery


def refund(payment: Payment) -> None:
    """The platform refunds the payment's whole order."""
    refunds.refund_order(db.session, gateway(), payment.order_id, SYSTEM)


def happened_days_ago(days: int = 1) -> dt.date:
    """What happened today, at the acquirer and here, happened ``days`` earlier: that day is
    over, so its report can be reconciled. Returns that day."""
    today = dt.datetime.combine(utcnow().date(), dt.time.min)
    shift = dt.timedelta(days=days)
    with Session(db.engine) as session:
        for model, columns in (
            (SimCharge, ["created_at"]),
            (SimRefund, ["created_at"]),
            (SimChargeback, ["created_at"]),
            (Payment, ["created_at", "captured_at", "refunded_at", "charged_back_at"]),
            (PaymentRefund, ["created_at", "refunded_at"]),
        ):
            for row in session.scalars(select(model)):
                for column in columns:
                    value = getattr(row, column)
                    if value is not None and value >= today:
                        setattr(row, column, value - shift)
        session.commit()
    db.session.expire_all()
    return today.date() - shift


def posted_days_ago(days: int) -> None:
    """What the ledger posted today, it posted ``days`` earlier (the same time of day)."""
    today = dt.datetime.combine(utcnow().date(), dt.time.min)
    with Session(db.engine) as session:
        rows = session.execute(
            select(LedgerTransaction.id, LedgerTransaction.created_at).where(
                LedgerTransaction.created_at >= today
            )
        ).all()
        for transaction_id, created_at in rows:
            session.execute(
                update(LedgerTransaction)
                .where(LedgerTransaction.id == transaction_id)
                .values(created_at=created_at - dt.timedelta(days=days))
            )
        session.commit()
    db.session.expire_all()


def reconcile(day: dt.date | None = None) -> list[dict[str, Any]]:
    """The task: each day due (or ``day``), with what the run added."""
    kwargs = {"day": day.isoformat()} if day else {}
    return celery.tasks["money.reconcile_settlements"].apply(kwargs=kwargs).get()


def added(
    day: dt.date,
    *,
    settlements: int = 0,
    lines: int = 0,
    chargebacks: int = 0,
    mismatches: int = 0,
    postings: int = 0,
) -> dict[str, Any]:
    """What ``reconcile`` reports a run added for ``day``."""
    return {"day": day.isoformat(), "settlements": settlements, "lines": lines,
            "chargebacks": chargebacks, "mismatches": mismatches, "postings": postings}  # fmt: skip


def create_payouts() -> list[int]:
    """The task: ids of the payouts it created."""
    return celery.tasks["money.create_payouts"].apply().get()


def available(partner_id: int, now: dt.datetime | None = None) -> int:
    """What the next payout would pay the partner in BRL (at ``now``, by default now)."""
    return payouts.funds(db.session, partner_id, "BRL", now or utcnow()).available


def balance(code: str) -> int:
    """The balance in BRL of the ledger account ``code``."""
    return ledger.balance(db.session, ledger.account_id(db.session, code), "BRL")


def transaction_sums() -> set[int]:
    """The sum of each ledger transaction's entries (per currency): {0} when all balance."""
    rows = db.session.execute(
        select(func.sum(LedgerEntry.amount_cents)).group_by(
            LedgerEntry.transaction_id, LedgerEntry.currency
        )
    ).scalars()
    return set(rows)


def parse(content: bytes, file_format: str) -> list[list[str]]:
    """A report file's rows as text, header first, CSV or XLSX (an XLSX money cell, a number
    with a currency format, reads as the CSV's "178.00")."""
    if file_format == "csv":
        return list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
    book = load_workbook(io.BytesIO(content), read_only=True)
    try:
        return [[cell_text(cell) for cell in row] for row in book.active.iter_rows()]
    finally:
        book.close()


def cell_text(cell: Any) -> str:
    if cell.value is None:
        return ""
    if cell.data_type == "n" and cell.number_format.endswith("#,##0.00"):
        return f"{Decimal(str(cell.value)):.2f}"
    return str(cell.value)


def records(rows: list[list[str]]) -> list[dict[str, str]]:
    """Rows after the header, each as a dict by column key ("event_id"; the header reads
    "Event id", in the language of whoever asked for the report)."""
    from app.services.reports.headers import HEADERS

    key_of = {str(label): key for key, label in HEADERS.items()}
    header, *body = rows
    keys = [key_of.get(name, name) for name in header]
    return [dict(zip(keys, row, strict=True)) for row in body]


def cents(text: str) -> int:
    """'178.00' -> 17800: money is a decimal string with two places, never a float."""
    assert re.fullmatch(r"-?\d+\.\d{2}", text), text
    return int(text.replace(".", ""))
