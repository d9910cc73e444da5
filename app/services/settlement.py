"""Reconciling the acquirer's daily settlement report with our payments and the ledger
(DESIGN.md, "Money").

Each UTC day, once it is over, is reconciled per gateway: for every currency a Settlement row
(unique per gateway, day and currency) with the totals of the report's lines; each line is
matched by reference against our payments and kept; chargebacks are recorded; the settlement is
posted (clearing -> bank, less the acquirer's fee); what does not match is flagged for finance.
A day is one database transaction and every step is idempotent (lines by the acquirer's id,
postings by cause key, mismatches by a unique key), so replaying a day posts nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import (
    Conflict,
    LineKind,
    MismatchKind,
    Payment,
    PaymentStatus,
    Settlement,
    SettlementDay,
    SettlementLine,
    SettlementMismatch,
    format_money,
)
from app.services import ledger, refunds
from app.services.payments import PaymentGateway, ReportLine, SettlementReport

log = logging.getLogger(__name__)

# What our payment's status must be for a report line of each kind to match it (a chargeback's
# own rules are the refund service's).
MATCHING_STATUSES = {
    LineKind.CHARGE: {PaymentStatus.CAPTURED, PaymentStatus.REFUNDED, PaymentStatus.CHARGED_BACK},
    LineKind.REFUND: {PaymentStatus.REFUNDED},
}
# What a reconciliation run reports it added (all zero when it replays a day).
SUMMARY_KEYS = ("settlements", "lines", "chargebacks", "mismatches", "postings")


def due_days(session: Session, gateway_name: str, today: dt.date) -> list[dt.date]:
    """Days not reconciled yet, from the day before the gateway's first capture (the acquirer's
    clock runs a moment ahead of ours) to yesterday."""
    first_capture = session.scalar(
        select(func.min(Payment.captured_at)).where(Payment.gateway == gateway_name)
    )
    if first_capture is None:
        return []
    first = first_capture.date() - dt.timedelta(days=1)
    done = set(
        session.scalars(select(SettlementDay.day).where(SettlementDay.gateway == gateway_name))
    )
    days = (first + dt.timedelta(days=n) for n in range((today - first).days))
    return [day for day in days if day not in done]


def reconcile_due_days(
    session: Session, gateway: PaymentGateway, now: dt.datetime
) -> list[dict[str, Any]]:
    """Reconcile every day not reconciled yet (the periodic task)."""
    return [
        reconcile_day(session, gateway, day, now)
        for day in due_days(session, gateway.name, now.date())
    ]


def reconcile_day(
    session: Session, gateway: PaymentGateway, day: dt.date, now: dt.datetime
) -> dict[str, Any]:
    """Fetch one day's report and reconcile it; asking again changes nothing. Returns what this
    run added (all zero on a replay)."""
    if day >= now.date():
        raise Conflict(
            f"{day.isoformat()} is not over yet (UTC): its report is reconciled from tomorrow."
        )
    session.rollback()  # no transaction stays open while the acquirer is asked
    report = gateway.settlement_report(day)
    try:
        summary = _reconcile(session, gateway.name, report, now)
        session.commit()
    except IntegrityError:
        # A concurrent run reconciled the day first: replaying over its rows adds what is left.
        session.rollback()
        summary = _reconcile(session, gateway.name, report, now)
        session.commit()
    log.info("settlement reconciled", extra={"gateway": gateway.name, **summary})
    return summary


def _reconcile(
    session: Session, gateway_name: str, report: SettlementReport, now: dt.datetime
) -> dict[str, Any]:
    start = dt.datetime.combine(report.day, dt.time.min)
    end = start + dt.timedelta(days=1)
    refs = {line.charge_ref for line in report.lines}
    known = {
        payment.gateway_ref: payment
        for payment in session.scalars(
            select(Payment).where(Payment.gateway == gateway_name, Payment.gateway_ref.in_(refs))
        )
    }
    ours = session.scalars(
        select(Payment).where(
            Payment.gateway == gateway_name,
            or_(
                and_(Payment.captured_at >= start, Payment.captured_at < end),
                and_(Payment.refunded_at >= start, Payment.refunded_at < end),
            ),
        )
    ).all()
    added: Counter[str] = Counter()
    for currency in sorted(report.currencies | {payment.currency for payment in ours}):
        lines = [line for line in report.lines if line.currency == currency]
        settlement = _settlement(session, gateway_name, report.day, currency, lines, added)
        for line in lines:
            _match(session, settlement, line, known.get(line.charge_ref), now, added)
        for payment in ours:
            if payment.currency == currency:
                _flag_if_unreported(session, settlement, payment, start, end, added)
        if settlement.ledger_transaction_id is None:
            settlement.ledger_transaction_id = ledger.post_settlement(session, settlement)
            added["postings"] += settlement.ledger_transaction_id is not None
    reconciled = select(SettlementDay.id).where(
        SettlementDay.gateway == gateway_name, SettlementDay.day == report.day
    )
    if session.scalar(reconciled) is None:
        session.add(SettlementDay(gateway=gateway_name, day=report.day, reconciled_at=now))
    session.flush()
    return {"day": report.day.isoformat(), **{key: added[key] for key in SUMMARY_KEYS}}


def _settlement(
    session: Session,
    gateway_name: str,
    day: dt.date,
    currency: str,
    lines: list[ReportLine],
    added: Counter[str],
) -> Settlement:
    found = session.scalar(
        select(Settlement).where(
            Settlement.gateway == gateway_name,
            Settlement.day == day,
            Settlement.currency == currency,
        )
    )
    if found is not None:
        return found

    def total(kind: LineKind) -> int:
        return sum(line.amount_cents for line in lines if line.kind == kind)

    settlement = Settlement(
        gateway=gateway_name,
        day=day,
        currency=currency,
        captured_cents=total(LineKind.CHARGE),
        refunded_cents=total(LineKind.REFUND),
        charged_back_cents=total(LineKind.CHARGEBACK),
        fee_cents=sum(line.fee_cents for line in lines),
        line_count=len(lines),
    )
    settlement.net_cents = settlement.cleared_cents - settlement.fee_cents
    session.add(settlement)
    session.flush()
    added["settlements"] += 1
    return settlement


def _match(
    session: Session,
    settlement: Settlement,
    line: ReportLine,
    payment: Payment | None,
    now: dt.datetime,
    added: Counter[str],
) -> None:
    """Keep one report line, matched against our payment; a chargeback is recorded here."""
    seen = select(SettlementLine.id).where(SettlementLine.line_ref == line.line_ref)
    if session.scalar(seen) is not None:
        return  # an earlier run matched it
    problem = _problem(line, payment)
    if problem is None and line.kind == LineKind.CHARGEBACK:
        try:
            refunds.record_chargeback(session, payment.id, line.reason, now)
            added["chargebacks"] += 1
        except Conflict as err:
            problem = (MismatchKind.UNEXPECTED_STATE, err.message)
    session.add(
        SettlementLine(
            settlement_id=settlement.id,
            kind=line.kind.value,
            line_ref=line.line_ref,
            charge_ref=line.charge_ref,
            payment_id=payment.id if payment is not None and problem is None else None,
            amount_cents=line.amount_cents,
            fee_cents=line.fee_cents,
        )
    )
    added["lines"] += 1
    if problem is not None:
        kind, detail = problem
        _flag(
            session,
            settlement,
            kind,
            line.kind,
            line.charge_ref,
            payment,
            detail,
            reported=line.amount_cents,
            added=added,
        )


def _problem(line: ReportLine, payment: Payment | None) -> tuple[MismatchKind, str] | None:
    if payment is None:
        return MismatchKind.UNKNOWN, f"No payment of ours has the reference {line.charge_ref}."
    if (line.amount_cents, line.currency) != (payment.amount_cents, payment.currency):
        return MismatchKind.AMOUNT_DIFFERS, (
            f"The acquirer reports a {line.kind} of"
            f" {format_money(line.amount_cents, line.currency)}; payment {payment.id} is"
            f" {format_money(payment.amount_cents, payment.currency)}."
        )
    statuses = MATCHING_STATUSES.get(line.kind)
    if statuses is not None and payment.status not in statuses:
        return MismatchKind.UNEXPECTED_STATE, (
            f"The acquirer reports a {line.kind}; payment {payment.id} is {payment.status} here."
        )
    return None


def _flag_if_unreported(
    session: Session,
    settlement: Settlement,
    payment: Payment,
    start: dt.datetime,
    end: dt.datetime,
    added: Counter[str],
) -> None:
    """A capture or refund of ours that day that no report (of this day or an earlier one: the
    acquirer's clock runs a moment ahead of ours) has."""
    refunded_at = payment.refunded_at if payment.status == PaymentStatus.REFUNDED else None
    for kind, at in ((LineKind.CHARGE, payment.captured_at), (LineKind.REFUND, refunded_at)):
        if at is None or not start <= at < end:
            continue
        reported = select(SettlementLine.id).where(
            SettlementLine.kind == kind, SettlementLine.charge_ref == payment.gateway_ref
        )
        if session.scalar(reported.limit(1)) is None:
            _flag(
                session,
                settlement,
                MismatchKind.MISSING,
                kind,
                payment.gateway_ref or f"payment:{payment.id}",
                payment,
                f"Payment {payment.id} has a {kind} here on {settlement.day.isoformat()};"
                " the acquirer's report does not.",
                reported=None,
                added=added,
            )


def _flag(
    session: Session,
    settlement: Settlement,
    kind: MismatchKind,
    line_kind: LineKind,
    reference: str,
    payment: Payment | None,
    detail: str,
    *,
    reported: int | None,
    added: Counter[str],
) -> None:
    exists = select(SettlementMismatch.id).where(
        SettlementMismatch.settlement_id == settlement.id,
        SettlementMismatch.kind == kind,
        SettlementMismatch.line_kind == line_kind,
        SettlementMismatch.reference == reference,
    )
    if session.scalar(exists) is not None:
        return
    session.add(
        SettlementMismatch(
            settlement_id=settlement.id,
            kind=kind.value,
            line_kind=line_kind.value,
            reference=reference,
            payment_id=payment.id if payment is not None else None,
            expected_cents=payment.amount_cents if payment is not None else None,
            reported_cents=reported,
            detail=detail[:300],
        )
    )
    added["mismatches"] += 1
    log.warning(
        "settlement mismatch",
        extra={"settlement_id": settlement.id, "kind": kind.value, "reference": reference},
    )
