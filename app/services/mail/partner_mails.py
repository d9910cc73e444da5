"""Mails to partners (event organisers): their approval, each payout paid with its statement,
and a daily sales summary they may turn off.

A partner is written to at its contact address, else at the addresses of its active users;
each in that person's saved language, else the platform's default.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from dataclasses import dataclass
from typing import Any

from babel.dates import format_date
from flask import current_app, url_for
from flask_babel import gettext
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.i18n import current_locale
from app.models import (
    Event,
    NotFound,
    Order,
    OrderStatus,
    Partner,
    PartnerStatus,
    PartnerUser,
    Payment,
    PaymentRefund,
    Payout,
    RefundStatus,
    Ticket,
    TicketStatus,
    local_time,
)
from app.services.mail import outbox
from app.services.mail.messages import Attachment, Gone, Message, render_pair, renderer

# The day a summary covers is the platform's (its default venue zone): partners in Brazil
# read "yesterday" as São Paulo's.
SUMMARY_ZONE = local_time.DEFAULT_TIMEZONE
_OPT_OUT_SALT = "daily-summary-opt-out"


def addresses(session: Session, partner_id: int) -> list[tuple[str, str]]:
    """(address, language) of whom the partner's mails go to."""
    partner = session.get(Partner, partner_id)
    default = current_app.config.get("DEFAULT_LOCALE", "pt_BR")
    if partner is not None and partner.contact_email:
        return [(partner.contact_email, default)]
    users = session.execute(
        select(PartnerUser.id, PartnerUser.email).where(
            PartnerUser.partner_id == partner_id,
            PartnerUser.active.is_(True),
            PartnerUser.email.is_not(None),
        )
    ).all()
    return [(email, outbox.locale_of(session, user_id)) for user_id, email in users]


def _queue(session: Session, kind: str, partner_id: int, key: str, params: dict[str, Any]) -> int:
    written = 0
    for address, locale in addresses(session, partner_id):
        # One mail per address; the key names it by a digest (an address may be longer than
        # a key, and a key is not the place for one).
        digest = hashlib.sha256(address.lower().encode()).hexdigest()[:16]
        mail_id = outbox.queue(
            session, kind, address, key=f"{key}:{digest}", locale=locale, params=params
        )
        written += mail_id is not None
    return written


def _partner(session: Session, params: dict[str, Any]) -> Partner:
    partner = session.get(Partner, params["partner_id"])
    if partner is None:
        raise Gone(f"partner {params['partner_id']} no longer exists")
    return partner


# -- approval ------------------------------------------------------------------------------------


def queue_approved(session: Session, partner: Partner) -> int:
    return _queue(
        session,
        "partner_approved",
        partner.id,
        f"partner_approved:{partner.id}:{partner.approved_at:%Y%m%d%H%M%S}",
        {"partner_id": partner.id},
    )


@renderer("partner_approved")
def partner_approved_mail(session: Session, params: dict[str, Any]) -> Message:
    partner = _partner(session, params)
    subject = gettext("%(partner)s is approved: you can sell on Bilheteria", partner=partner.name)
    return render_pair(
        "partner_approved",
        subject,
        partner=partner,
        dashboard_url=current_app.config["PUBLIC_URL"] + current_app.appbuilder.get_url_for_index,
    )


# -- payouts -------------------------------------------------------------------------------------


def queue_payout_paid(session: Session, payout: Payout) -> int:
    return _queue(
        session,
        "payout_paid",
        payout.partner_id,
        f"payout_paid:{payout.id}",
        {"payout_id": payout.id, "partner_id": payout.partner_id},
    )


@dataclass(frozen=True)
class StatementLine:
    kind: str
    count: int
    amount_cents: int


@renderer("payout_paid")
def payout_paid_mail(session: Session, params: dict[str, Any]) -> Message:
    payout = session.get(Payout, params["payout_id"])
    if payout is None:
        raise Gone(f"payout {params['payout_id']} no longer exists")
    totals: dict[str, list[int]] = {}
    rows = []
    for item in sorted(payout.items, key=lambda i: i.ledger_transaction.created_at):
        transaction = item.ledger_transaction
        line = totals.setdefault(transaction.kind, [0, 0])
        line[0] += 1
        line[1] += item.amount_cents
        rows.append((transaction, item))
    lines = [StatementLine(kind, count, cents) for kind, (count, cents) in sorted(totals.items())]
    subject = gettext(
        "Payout %(id)s paid: %(amount)s",
        id=payout.id,
        amount=_money(payout.amount_cents, payout.currency),
    )
    message = render_pair(
        "payout_paid",
        subject,
        payout=payout,
        partner=payout.partner,
        lines=lines,
        kinds=_KIND_NAMES(),
    )
    message.attachments.append(
        Attachment(f"payout-{payout.id}.csv", "text/csv", _statement_csv(payout, rows))
    )
    return message


def _KIND_NAMES() -> dict[str, str]:  # noqa: N802 - a table, translated when read
    return {
        "capture": gettext("Sales"),
        "refund": gettext("Refunds"),
        "chargeback": gettext("Chargebacks"),
        "reversal": gettext("Reversals"),
    }


def _money(cents: int, currency: str) -> str:
    from app.models import format_money

    return format_money(cents, currency)


def _statement_csv(payout: Payout, rows: list[tuple[Any, Any]]) -> bytes:
    """The payout's lines: each ledger transaction it pays and the partner's share of it."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [gettext("Date (UTC)"), gettext("Transaction"), gettext("Kind"), gettext("Description"),
         gettext("Amount"), gettext("Currency")]
    )  # fmt: skip
    names = _KIND_NAMES()
    for transaction, item in rows:
        writer.writerow(
            [
                transaction.created_at.isoformat(timespec="seconds"),
                transaction.id,
                names.get(transaction.kind, transaction.kind),
                transaction.memo or transaction.cause_key,
                _decimal(item.amount_cents),
                payout.currency,
            ]
        )
    writer.writerow(["", "", "", gettext("Total"), _decimal(payout.amount_cents), payout.currency])
    return out.getvalue().encode("utf-8-sig")  # Excel reads the accents right


def _decimal(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


# -- the daily summary ---------------------------------------------------------------------------


def opt_out_token(partner_id: int) -> str:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_OPT_OUT_SALT).dumps(partner_id)


def _partner_of_opt_out(token: str) -> int | None:
    try:
        value = URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_OPT_OUT_SALT).loads(token)
    except BadSignature:
        return None
    return value if isinstance(value, int) else None


def opt_out_partner(session: Session, token: str) -> Partner:
    """The partner whose daily-summary link this is; NotFound for a forged or foreign one."""
    partner_id = _partner_of_opt_out(token)
    partner = session.get(Partner, partner_id) if partner_id is not None else None
    if partner is None:
        raise NotFound(gettext("This link is not valid."))
    return partner


def opt_out(session: Session, token: str) -> Partner:
    """The link's partner stops receiving the daily summary (an admin turns it on again)."""
    partner = opt_out_partner(session, token)
    partner.daily_summary = False
    session.commit()
    return partner


def summary_day(now: dt.datetime) -> dt.date:
    """The day a summary sent at ``now`` (naive UTC) covers: yesterday, in SUMMARY_ZONE."""
    return (local_time.to_local(now, SUMMARY_ZONE) - dt.timedelta(days=1)).date()


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = local_time.to_utc(dt.datetime.combine(day, dt.time()), SUMMARY_ZONE)
    end = local_time.to_utc(
        dt.datetime.combine(day + dt.timedelta(days=1), dt.time()), SUMMARY_ZONE
    )
    return start, end


def queue_daily_summaries(session: Session, now: dt.datetime) -> int:
    """Yesterday's summary for every approved partner that wants one and had sales or refunds
    that day; once per partner and day, however often this runs."""
    day = summary_day(now)
    start, end = _day_bounds(day)
    sold = (
        select(Event.partner_id)
        .join(Order, Order.event_id == Event.id)
        .where(Order.paid_at >= start, Order.paid_at < end)
    )
    refunded = (
        select(Event.partner_id)
        .join(Order, Order.event_id == Event.id)
        .join(Payment, Payment.order_id == Order.id)
        .join(PaymentRefund, PaymentRefund.payment_id == Payment.id)
        .where(PaymentRefund.refunded_at >= start, PaymentRefund.refunded_at < end)
    )
    partners = session.scalars(
        select(Partner.id)
        .where(
            Partner.status == PartnerStatus.APPROVED,
            Partner.daily_summary.is_(True),
            Partner.id.in_(sold.union(refunded).scalar_subquery()),
        )
        .order_by(Partner.id)
    ).all()
    written = 0
    for partner_id in partners:
        written += _queue(
            session,
            "daily_summary",
            partner_id,
            f"daily_summary:{partner_id}:{day.isoformat()}",
            {"partner_id": partner_id, "day": day.isoformat()},
        )
    session.commit()
    return written


@dataclass(frozen=True)
class SummaryLine:
    event: Event
    tickets: int
    gross_cents: int
    refunded_cents: int
    currency: str


def daily_figures(session: Session, partner_id: int, day: dt.date) -> list[SummaryLine]:
    """Per event of the partner: tickets sold and what buyers paid on ``day``, and what went
    back to them that day (gross, as the customer sees it: the platform's fee is in the
    statement, not here)."""
    start, end = _day_bounds(day)
    sales = dict(
        (row.event_id, (row.tickets, row.gross))
        for row in session.execute(
            select(
                Order.event_id,
                func.count(Ticket.id).label("tickets"),
                func.coalesce(func.sum(Ticket.price_cents), 0).label("gross"),
            )
            .join(Ticket, Ticket.order_id == Order.id)
            .join(Event, Event.id == Order.event_id)
            .where(
                Event.partner_id == partner_id,
                Order.paid_at >= start,
                Order.paid_at < end,
                Order.status.in_((OrderStatus.PAID, OrderStatus.REFUNDED)),
                # A transferred ticket's row gave way to its successor's: one sale, one row.
                Ticket.status != TicketStatus.TRANSFERRED,
            )
            .group_by(Order.event_id)
        )
    )
    refunds = dict(
        session.execute(
            select(Order.event_id, func.coalesce(func.sum(PaymentRefund.amount_cents), 0))
            .join(Payment, Payment.order_id == Order.id)
            .join(PaymentRefund, PaymentRefund.payment_id == Payment.id)
            .join(Event, Event.id == Order.event_id)
            .where(
                Event.partner_id == partner_id,
                PaymentRefund.status == RefundStatus.DONE,
                PaymentRefund.refunded_at >= start,
                PaymentRefund.refunded_at < end,
            )
            .group_by(Order.event_id)
        ).all()
    )
    ids = sorted(set(sales) | set(refunds))
    events = {e.id: e for e in session.scalars(select(Event).where(Event.id.in_(ids)))}
    return [
        SummaryLine(
            events[i],
            sales.get(i, (0, 0))[0],
            sales.get(i, (0, 0))[1],
            refunds.get(i, 0),
            events[i].currency,
        )
        for i in sorted(ids, key=lambda i: (events[i].starts_at, i))
    ]


@renderer("daily_summary")
def daily_summary_mail(session: Session, params: dict[str, Any]) -> Message:
    partner = _partner(session, params)
    if not partner.daily_summary:  # turned off since it was written
        raise Gone(f"{partner.name} turned the daily summary off")
    day = dt.date.fromisoformat(params["day"])
    lines = daily_figures(session, partner.id, day)
    day_text = format_date(day, "long", locale=current_locale())
    subject = gettext("Sales of %(day)s: %(partner)s", day=day_text, partner=partner.name)
    return render_pair(
        "daily_summary",
        subject,
        partner=partner,
        day=day_text,
        lines=lines,
        tickets=sum(line.tickets for line in lines),
        opt_out_url=url_for(
            "shop.daily_summary_off", token=opt_out_token(partner.id), _external=True
        ),
    )
