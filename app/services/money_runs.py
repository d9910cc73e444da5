"""The scheduled money runs, run now: the settlement of a day and the payout run.

Finance and admins start them from the dashboard (*Money > Run now*, after a confirmation page)
or with `flask money settle [--day]` / `flask money payouts`; the Celery tasks
(``app/tasks/money.py``) call the same functions. Each run is idempotent as the scheduled one is
(a day's settlement, a ledger cause and a payout item's transaction are unique): a day
reconciled before posts nothing more, and a second payout run finds nothing more to pay. A day
is reconciled only once it is over (UTC): ``settlement.reconcile_day`` refuses today and later.
The previews tell the confirmation page what a run would do; they change nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Conflict, Partner, Payment, Payout, SettlementDay, format_money
from app.models.base import utcnow
from app.services import payouts, settlement
from app.services.payments import gateway


def settle(
    session: Session, day: dt.date | None = None, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Reconcile ``day`` (Conflict while it is not over), or every day over and not reconciled
    yet; returns what each day's run added (all zero for a day reconciled before)."""
    now = now or utcnow()
    if day is None:
        return settlement.reconcile_due_days(session, gateway(), now)
    check_day_over(day, now)
    return [settlement.reconcile_day(session, gateway(), day, now)]


def payouts_now(session: Session, now: dt.datetime | None = None) -> list[int]:
    """The payout run: one pending payout per partner and currency with money available; the
    ids made (none when everything available is in a payout already)."""
    return payouts.create_payouts(session, now or utcnow())


def describe_settlement(summary: dict[str, Any]) -> str:
    """One line for a day's run: what it added, or that it added nothing."""
    counts = {key: summary[key] for key in settlement.SUMMARY_KEYS}
    if not any(counts.values()):
        return f"{summary['day']}: reconciled before, nothing new to post."
    return f"{summary['day']}: " + ", ".join(f"{n} {key}" for key, n in counts.items()) + " added."


def describe_payouts(session: Session, payout_ids: list[int]) -> str:
    if not payout_ids:
        return gettext("No payout made: no partner has settled money available beyond its payouts.")
    made = session.execute(
        select(Payout.id, Partner.name, Payout.amount_cents, Payout.currency)
        .join(Partner, Partner.id == Payout.partner_id)
        .where(Payout.id.in_(payout_ids))
        .order_by(Payout.id)
    ).all()
    listed = "; ".join(
        f"#{pid} {name} {format_money(amount, currency)}" for pid, name, amount, currency in made
    )
    return gettext(
        "%(count)s payout(s) made, pending approval: %(payouts)s.", count=len(made), payouts=listed
    )


@dataclass(frozen=True)
class DayPreview:
    """What the confirmation page says about settling a day."""

    day: dt.date
    reconciled_at: dt.datetime | None
    captured: list[tuple[str, int, int]]  # currency, payments, cents

    @property
    def captured_text(self) -> str:
        if not self.captured:
            return gettext("no card payment captured that day")
        return "; ".join(
            gettext(
                "%(count)s payment(s) captured, %(amount)s",
                count=count,
                amount=format_money(cents, currency),
            )
            for currency, count, cents in self.captured
        )


def check_day_over(day: dt.date, now: dt.datetime | None = None) -> None:
    """Conflict unless ``day`` is over (UTC): its report exists only from the next day."""
    if day >= (now or utcnow()).date():
        raise Conflict(
            gettext(
                "%(day)s is not over yet (UTC): its report is reconciled from tomorrow.",
                day=day.isoformat(),
            ),
            field="day",
        )


def preview_day(session: Session, day: dt.date, now: dt.datetime | None = None) -> DayPreview:
    check_day_over(day, now)
    name = gateway().name
    reconciled_at = session.scalar(
        select(SettlementDay.reconciled_at).where(
            SettlementDay.gateway == name, SettlementDay.day == day
        )
    )
    start = dt.datetime.combine(day, dt.time.min)
    captured = session.execute(
        select(Payment.currency, func.count(), func.sum(Payment.amount_cents))
        .where(
            Payment.gateway == name,
            Payment.captured_at >= start,
            Payment.captured_at < start + dt.timedelta(days=1),
        )
        .group_by(Payment.currency)
        .order_by(Payment.currency)
    ).all()
    return DayPreview(day, reconciled_at, [(c, int(n), int(cents)) for c, n, cents in captured])


def preview_payouts(session: Session, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Who the payout run would pay now, and how much (partner, currency, amount)."""
    due = [f for f in payouts.partner_funds(session, now or utcnow()) if f.available > 0]
    names = dict(
        session.execute(
            select(Partner.id, Partner.name).where(Partner.id.in_({f.partner_id for f in due}))
        ).all()
    )
    return [
        {"partner": names[f.partner_id], "amount": format_money(f.available, f.currency)}
        for f in due
    ]
