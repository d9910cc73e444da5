"""Reconciling the acquirer's daily settlement report with our payments and the ledger
(ARCHITECTURE.md, "Money").

Each UTC day, once it is over, is reconciled per gateway: for every currency a Settlement row
(unique per gateway, day and currency) with the totals of the report's lines; each line is
matched by reference against our payments (a refund line against one of our refunds of that
payment, by amount: refunds may be partial, several per payment) and kept; chargebacks are
recorded; the settlement is posted (clearing -> bank, less the acquirer's fee); what does not
match is flagged for finance.
A day is one database transaction and every step is idempotent (lines by the acquirer's id,
postings by cause key, mismatches by a unique key), so replaying a day posts nothing twice.
A day reconciled again after the acquirer corrected its report keeps the lines it gained and
posts exactly what they moved: a settlement's totals are always those of the lines it posted.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from typing import Any

from flask_babel import gettext
from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import metrics
from app.failpoints import failpoint
from app.models import (
    Conflict,
    LineKind,
    MismatchKind,
    Payment,
    PaymentRefund,
    PaymentStatus,
    RefundStatus,
    Settlement,
    SettlementDay,
    SettlementLine,
    SettlementMismatch,
    format_money,
)
from app.models.base import any_of, literal_is
from app.services import ledger, refunds
from app.services.payments import PaymentGateway, ReportLine, SettlementReport

log = logging.getLogger(__name__)

# What our payment's status must be for a charge line to match it (a refund line matches one of
# our refunds instead; a chargeback's own rules are the refund service's).
CHARGED_STATUSES = {PaymentStatus.CAPTURED, PaymentStatus.REFUNDED, PaymentStatus.CHARGED_BACK}
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
    """Reconcile every day not reconciled yet (the periodic task); a day with payments or
    refunds still being finished waits for the next run."""
    summaries = []
    for day in due_days(session, gateway.name, now.date()):
        if _unfinished(session, gateway.name, day):
            continue
        try:
            summaries.append(reconcile_day(session, gateway, day, now))
        except Exception:  # one day's report failing (the acquirer down) must not stop the rest
            session.rollback()
            log.exception("settlement of %s not reconciled: tried again next run", day)
        failpoint("settlement.after_day")  # a test kills the worker here (app/failpoints.py)
    return summaries


def _unfinished(session: Session, gateway_name: str, day: dt.date) -> int:
    """Payments and refunds begun by the end of ``day`` and not finished yet (a crash, a slow
    card, an answer lost): the acquirer may report them that day while we do not know the
    payment's reference or have not booked the refund yet. Reconciling then would flag their
    lines for good (a line is matched once), and our refund again the day it is finished."""
    day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    pending_payments = select(func.count()).where(
        Payment.gateway == gateway_name,
        literal_is(Payment.status, PaymentStatus.PENDING),  # ix_payment_pending
        Payment.created_at < day_end,
    )
    pending_refunds = (
        select(func.count())
        .select_from(PaymentRefund)
        .join(Payment, Payment.id == PaymentRefund.payment_id)
        .where(
            Payment.gateway == gateway_name,
            PaymentRefund.status == RefundStatus.PENDING,
            PaymentRefund.created_at < day_end,
        )
    )
    return session.scalar(pending_payments) + session.scalar(pending_refunds)


def reconcile_day(
    session: Session, gateway: PaymentGateway, day: dt.date, now: dt.datetime
) -> dict[str, Any]:
    """Fetch one day's report and reconcile it; asking again changes nothing. Returns what this
    run added (all zero on a replay)."""
    if day >= now.date():
        raise Conflict(
            gettext(
                "%(day)s is not over yet (UTC): its report is reconciled from tomorrow.",
                day=day.isoformat(),
            )
        )
    unfinished = _unfinished(session, gateway.name, day)
    if unfinished:
        raise Conflict(
            gettext(
                "%(unfinished)s payment(s) or refund(s) begun by the end of "
                "%(day)s are still being finished: reconcile the day once they "
                "are (the reconcile task finishes them).",
                unfinished=unfinished,
                day=day.isoformat(),
            )
        )
    session.rollback()  # no transaction stays open while the acquirer is asked
    report = gateway.settlement_report(day)
    try:
        summary = _reconcile(session, gateway.name, report, now)
        session.commit()
    except IntegrityError:
        # A concurrent run reconciled the day first, or settled a payment this day's report
        # charges too (uq_settlement_line_charge_payment): replaying over its rows adds what is
        # left and flags the charge reported twice.
        session.rollback()
        summary = _reconcile(session, gateway.name, report, now)
        session.commit()
    log.info("settlement reconciled", extra={"gateway": gateway.name, **summary})
    metrics.SETTLEMENT_RUNS.labels("mismatch" if summary["mismatches"] else "matched").inc()
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
            select(Payment).where(
                Payment.gateway == gateway_name, any_of(Payment.gateway_ref, refs)
            )
        )
    }
    captured = session.scalars(
        select(Payment).where(
            Payment.gateway == gateway_name, Payment.captured_at >= start, Payment.captured_at < end
        )
    ).all()
    refunded = session.scalars(
        select(PaymentRefund)
        .join(Payment, Payment.id == PaymentRefund.payment_id)
        .where(
            Payment.gateway == gateway_name,
            PaymentRefund.status == RefundStatus.DONE,
            PaymentRefund.refunded_at >= start,
            PaymentRefund.refunded_at < end,
        )
        .order_by(PaymentRefund.id)
    ).all()
    added: Counter[str] = Counter()
    ours = {payment.currency for payment in captured} | {r.payment.currency for r in refunded}
    for currency in sorted(report.currencies | ours):
        lines = [line for line in report.lines if line.currency == currency]
        settlement = _settlement(session, gateway_name, report.day, currency, added)
        for line in lines:
            _match(session, settlement, line, known.get(line.charge_ref), now, added)
        for payment in captured:
            if payment.currency == currency:
                _flag_if_unreported(session, settlement, payment, added)
        _flag_unreported_refunds(
            session, settlement, [r for r in refunded if r.payment.currency == currency], added
        )
        added["postings"] += _post_new_lines(session, settlement)
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
    added: Counter[str],
) -> Settlement:
    """The day's settlement in the currency, created empty: its totals are those of the lines
    it posted (``_post_new_lines``)."""
    found = session.scalar(
        select(Settlement).where(
            Settlement.gateway == gateway_name,
            Settlement.day == day,
            Settlement.currency == currency,
        )
    )
    if found is not None:
        return found
    settlement = Settlement(gateway=gateway_name, day=day, currency=currency)
    session.add(settlement)
    session.flush()
    added["settlements"] += 1
    return settlement


def _post_new_lines(session: Session, settlement: Settlement) -> int:
    """Post what the settlement's lines moved and it has not posted yet: all of them the first
    time, then the lines a corrected report added when the day is reconciled again. The
    settlement's totals are always what it posted, so the difference is exactly the new
    lines'; a payment is settled (its line kept) and its money reaches the bank in the same
    database transaction. Returns how many postings it made (0 or 1)."""
    session.flush()
    totals = dict.fromkeys(LineKind, 0)
    fees = count = 0
    for kind, amount, fee, lines in session.execute(
        select(
            SettlementLine.kind,
            func.sum(SettlementLine.amount_cents),
            func.sum(SettlementLine.fee_cents),
            func.count(),
        )
        .where(SettlementLine.settlement_id == settlement.id)
        .group_by(SettlementLine.kind)
    ):
        totals[LineKind(kind)], fees, count = int(amount), fees + int(fee), count + lines
    if count == settlement.line_count:
        return 0  # no new line
    before = (settlement.cleared_cents, settlement.fee_cents)
    settlement.captured_cents = totals[LineKind.CHARGE]
    settlement.refunded_cents = totals[LineKind.REFUND]
    settlement.charged_back_cents = totals[LineKind.CHARGEBACK]
    settlement.fee_cents = fees
    settlement.net_cents = settlement.cleared_cents - settlement.fee_cents
    settlement.line_count = count
    posting = ledger.post_settlement(
        session, settlement, settlement.cleared_cents - before[0], settlement.fee_cents - before[1]
    )
    if posting is not None and settlement.ledger_transaction_id is None:
        settlement.ledger_transaction_id = posting
    return int(posting is not None)


def _match(
    session: Session,
    settlement: Settlement,
    line: ReportLine,
    payment: Payment | None,
    now: dt.datetime,
    added: Counter[str],
) -> None:
    """Keep one report line, matched against our payment (a refund line against one of its
    refunds); a chargeback is recorded here."""
    seen = select(SettlementLine.id).where(SettlementLine.line_ref == line.line_ref)
    if session.scalar(seen) is not None:
        return  # an earlier run matched it
    problem = _problem(line, payment)
    refund = None
    if problem is None and line.kind == LineKind.CHARGE:
        problem = _charged_again(session, line, payment)
    if problem is None and line.kind == LineKind.REFUND:
        refund, problem = _our_refund(session, line, payment)
    if problem is None and line.kind == LineKind.CHARGEBACK:
        try:
            refunds.record_chargeback(session, payment.id, line.reason, now)
            added["chargebacks"] += 1
        except Conflict as err:
            problem = (MismatchKind.UNEXPECTED_STATE, err.message, payment.refundable_cents)
    session.add(
        SettlementLine(
            settlement_id=settlement.id,
            kind=line.kind.value,
            line_ref=line.line_ref,
            charge_ref=line.charge_ref,
            payment_id=payment.id if payment is not None and problem is None else None,
            payment_refund_id=refund.id if refund is not None else None,
            amount_cents=line.amount_cents,
            fee_cents=line.fee_cents,
        )
    )
    added["lines"] += 1
    if problem is not None:
        kind, detail, expected = problem
        _flag(
            session,
            settlement,
            kind,
            line.kind,
            line.charge_ref,
            payment,
            detail,
            expected=expected,
            reported=line.amount_cents,
            added=added,
        )


Problem = tuple[MismatchKind, str, int | None]  # what, why, what we expected (cents)


def _problem(line: ReportLine, payment: Payment | None) -> Problem | None:
    if payment is None:
        return (
            MismatchKind.UNKNOWN,
            f"No payment of ours has the reference {line.charge_ref}.",
            None,
        )
    # A chargeback takes back what was not refunded; refund lines are matched refund by refund.
    expected = {
        LineKind.CHARGE: payment.amount_cents,
        LineKind.CHARGEBACK: payment.refundable_cents,
    }.get(line.kind)
    if line.currency != payment.currency or expected not in (None, line.amount_cents):
        ours = (
            format_money(expected, payment.currency) if expected is not None else payment.currency
        )
        return (
            MismatchKind.AMOUNT_DIFFERS,
            (
                f"The acquirer reports a {line.kind} of"
                f" {format_money(line.amount_cents, line.currency)}; payment {payment.id} expects"
                f" {ours} ({payment.currency})."
            ),
            expected,
        )
    if line.kind == LineKind.CHARGE and payment.status not in CHARGED_STATUSES:
        return (
            MismatchKind.UNEXPECTED_STATE,
            (f"The acquirer reports a {line.kind}; payment {payment.id} is {payment.status} here."),
            expected,
        )
    return None


def _charged_again(session: Session, line: ReportLine, payment: Payment) -> Problem | None:
    """A charge line whose payment a line (of this report or an earlier day's) settled already:
    the acquirer reports the charge twice. Only the first one settles the payment."""
    first = session.scalar(
        select(SettlementLine.line_ref)
        .where(SettlementLine.kind == LineKind.CHARGE, SettlementLine.payment_id == payment.id)
        .limit(1)
    )
    if first is None:
        return None
    return (
        MismatchKind.UNEXPECTED_STATE,
        f"The acquirer reports the charge of payment {payment.id} again: its line {first}"
        " settled it already.",
        None,
    )


def _our_refund(
    session: Session, line: ReportLine, payment: Payment
) -> tuple[PaymentRefund | None, Problem | None]:
    """The refund of ours a refund line reports: one of the payment's refunds of that amount no
    line matched yet (the oldest), or what is wrong."""
    unmatched = session.scalars(
        select(PaymentRefund)
        .where(
            PaymentRefund.payment_id == payment.id,
            PaymentRefund.status == RefundStatus.DONE,
            ~exists().where(SettlementLine.payment_refund_id == PaymentRefund.id),
        )
        .order_by(PaymentRefund.id)
    ).all()
    for refund in unmatched:
        if refund.amount_cents == line.amount_cents:
            return refund, None
    reported = format_money(line.amount_cents, line.currency)
    if not unmatched:
        return None, (
            MismatchKind.UNEXPECTED_STATE,
            f"The acquirer reports a refund of {reported}; payment {payment.id}"
            f" ({payment.status}) has no refund here it has not reported already.",
            None,
        )
    ours = ", ".join(format_money(r.amount_cents, payment.currency) for r in unmatched)
    return None, (
        MismatchKind.AMOUNT_DIFFERS,
        f"The acquirer reports a refund of {reported}; payment {payment.id}'s refunds not"
        f" reported yet are {ours}.",
        sum(r.amount_cents for r in unmatched),
    )


def _flag_if_unreported(
    session: Session, settlement: Settlement, payment: Payment, added: Counter[str]
) -> None:
    """A capture of ours that day that no report (of this day or an earlier one: the acquirer's
    clock runs a moment ahead of ours) has."""
    reported = select(SettlementLine.id).where(
        SettlementLine.kind == LineKind.CHARGE, SettlementLine.charge_ref == payment.gateway_ref
    )
    if session.scalar(reported.limit(1)) is None:
        _flag(
            session,
            settlement,
            MismatchKind.MISSING,
            LineKind.CHARGE,
            payment.gateway_ref or f"payment:{payment.id}",
            payment,
            f"Payment {payment.id} has a charge here on {settlement.day.isoformat()};"
            " the acquirer's report does not.",
            expected=payment.amount_cents,
            reported=None,
            added=added,
        )


def _flag_unreported_refunds(
    session: Session, settlement: Settlement, ours: list[PaymentRefund], added: Counter[str]
) -> None:
    """Refunds of ours that day that no report line (of this day or an earlier one) matched:
    one flag per payment, expecting their total."""
    missing: dict[int, list[PaymentRefund]] = {}
    for refund in ours:
        matched = select(SettlementLine.id).where(SettlementLine.payment_refund_id == refund.id)
        if session.scalar(matched) is None:
            missing.setdefault(refund.payment_id, []).append(refund)
    for group in missing.values():
        payment = group[0].payment
        amounts = ", ".join(format_money(r.amount_cents, payment.currency) for r in group)
        _flag(
            session,
            settlement,
            MismatchKind.MISSING,
            LineKind.REFUND,
            payment.gateway_ref or f"payment:{payment.id}",
            payment,
            f"Payment {payment.id} has refunds here on {settlement.day.isoformat()} ({amounts});"
            " the acquirer's report does not.",
            expected=sum(r.amount_cents for r in group),
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
    expected: int | None,
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
            expected_cents=expected,
            reported_cents=reported,
            detail=detail[:300],
        )
    )
    added["mismatches"] += 1
    log.warning(
        "settlement mismatch",
        extra={"settlement_id": settlement.id, "kind": kind.value, "reference": reference},
    )
