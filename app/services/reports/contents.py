"""What each report holds: sales per event, a partner's statement for a period, platform revenue
per day, and the batch file of approved payouts. Every figure comes from the ledger; rows are
fetched CHUNK at a time and yielded one by one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext
from sqlalchemy import Select, String, and_, case, cast, func, literal, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.models import (
    DomainError,
    Event,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Order,
    Partner,
    Payment,
    Payout,
    PayoutStatus,
    ReportKind,
    Ticket,
    TicketStatus,
    TicketType,
    TransactionKind,
)
from app.models.event import owned_event_ids
from app.models.ticket_type import FULL_PRICE_NAME
from app.services import ledger
from app.services.ledger import entry_sum
from app.services.reports.files import Money, money

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
                raise DomainError(gettext("Give the period's first and last day."), field="start")
            return None
        if start is None:
            raise DomainError(gettext("Give the period's first day."), field="start")
        if end is None:
            raise DomainError(gettext("Give the period's last day."), field="end")
        if end < start:
            raise DomainError(gettext("The period ends before it starts."), field="end")
        if end >= dt.date.max:  # the first moment after it would not be a date
            raise DomainError(gettext("The period's last day is too far away."), field="end")
        return cls(start, end)

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> Period | None:
        params = params or {}
        if not params.get("start"):
            return None
        return cls(dt.date.fromisoformat(params["start"]), dt.date.fromisoformat(params["end"]))


def _stream(session: Session, query: Select[Any]) -> Iterator[Any]:
    """The query's rows, fetched CHUNK at a time (a server-side cursor)."""
    yield from session.execute(query.execution_options(yield_per=CHUNK))


# -- sales per event -----------------------------------------------------------------------------

SALES_COLUMNS = [
    "line", "event_id", "event", "partner", "currency", "order_id", "paid_at", "ticket_types",
    "tickets", "tickets_refunded", "gross", "discounts", "fees", "refunds", "chargebacks", "net",
]  # fmt: skip
SALES_FIGURES = (
    "tickets", "tickets_refunded", "gross", "discounts", "fees", "refunds", "chargebacks", "net",
)  # fmt: skip
SALES_MONEY = frozenset({"gross", "discounts", "fees", "refunds", "chargebacks", "net"})


def sales_query(session: Session, partner_id: int | None, period: Period | None) -> Select[Any]:
    """One row per paid order with money in the period, by event: its tickets, the gross (the
    prices before promo codes), the codes' discounts (the customer paid gross - discounts), the
    platform's fee kept (less what a refund gave back), refunds and chargebacks at what was paid
    back, and the partner's net, all from the ledger. Net = gross - discounts - fees - refunds -
    chargebacks, the order's part of the partner's balance."""
    clearing = ledger.account_id(session, ledger.CLEARING)
    fee_revenue = ledger.account_id(session, ledger.FEE_REVENUE)
    kind, account = LedgerTransaction.kind, LedgerEntry.account_id
    discount = LedgerEntry.promo_code_id.is_not(None)  # a sale's discount line
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
    kinds = _ticket_types_of_orders(partner_id)
    query = (
        select(
            Event.id.label("event_id"),
            Event.name.label("event"),
            Partner.name.label("partner"),
            LedgerEntry.currency,
            Order.id.label("order_id"),
            Order.paid_at,
            func.max(kinds.c.ticket_types).label("ticket_types"),
            # An order's tickets count in the period of its sale, their refund in that of the
            # refund.
            func.max(
                case((kind == TransactionKind.CAPTURE, func.coalesce(tickets.c.issued, 0)), else_=0)
            ).label("tickets"),
            func.max(
                case((kind.in_(ledger.REVERSES_SALE), func.coalesce(tickets.c.revoked, 0)), else_=0)
            ).label("tickets_refunded"),
            (
                entry_sum(kind == TransactionKind.CAPTURE, account == clearing)
                + entry_sum(kind == TransactionKind.CAPTURE, discount)
            ).label("gross"),
            entry_sum(kind == TransactionKind.CAPTURE, discount).label("discounts"),
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
        .outerjoin(kinds, kinds.c.order_id == Order.id)
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


def _ticket_types_of_orders(partner_id: int | None) -> Any:
    """Each order's tickets by type: "Inteira x2; Meia-entrada x1" (issued ones, refunded or
    not)."""
    name = func.coalesce(TicketType.name, FULL_PRICE_NAME)
    per_type = (
        select(Ticket.order_id, name.label("name"), func.count().label("count"))
        .outerjoin(TicketType, TicketType.id == Ticket.ticket_type_id)
        .where(Ticket.status.in_((TicketStatus.VALID, TicketStatus.REVOKED)))
        .group_by(Ticket.order_id, name)
    )
    if partner_id is not None:
        per_type = per_type.where(Ticket.event_id.in_(owned_event_ids(partner_id)))
    per_type = per_type.subquery()
    label = per_type.c.name + " x" + cast(per_type.c.count, String)
    return (
        select(
            per_type.c.order_id,
            func.string_agg(label, aggregate_order_by(literal("; "), per_type.c.name)).label(
                "ticket_types"
            ),
        )
        .group_by(per_type.c.order_id)
        .subquery()
    )


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
            yield _sales_line(
                "order", event, row.order_id, row.paid_at, figures, row.ticket_types or ""
            )
        if event:
            yield _sales_line("event total", event, None, None, event_totals)
        for currency, figures in sorted(totals.items()):
            yield _sales_line("total", [None, None, None, currency], None, None, figures)

    return SALES_COLUMNS, rows()


def _sales_line(
    line: str,
    event: list[Any],
    order_id: int | None,
    paid_at: Any,
    figures: dict[str, int],
    ticket_types: str = "",
) -> list[Any]:
    currency = event[3]
    amounts = [
        Money(figures[k], currency) if k in SALES_MONEY else figures[k] for k in SALES_FIGURES
    ]
    return [line, *event, order_id, paid_at, ticket_types, *amounts]


# -- partner statement ---------------------------------------------------------------------------

STATEMENT_FIGURES = (
    "sales", "discounts", "fees", "refunds", "chargebacks", "fees_returned", "payouts",
)  # fmt: skip
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


def _ticket_type_lines(
    session: Session, account: int, currency: str, period: Period, who: list[Any]
) -> Iterator[list[Any]]:
    """The period's sales and refunds split by ticket type (the entries a typed sale or refund
    posts on the partner's payable and the fee revenue): one line per type, for reading, not
    added to the totals (the transactions above already are). Sales at their gross, with the
    promo codes' discounts apart, as the transactions show them."""
    fee_revenue = ledger.account_id(session, ledger.FEE_REVENUE)
    kind, entry_account = LedgerTransaction.kind, LedgerEntry.account_id
    shares = entry_account.in_((account, fee_revenue))
    capture, refund = kind == TransactionKind.CAPTURE, kind == TransactionKind.REFUND
    discount = LedgerEntry.promo_code_id.is_not(None)
    query = (
        select(
            TicketType.name,
            (-entry_sum(capture, shares, ~discount)).label("sales"),
            entry_sum(capture, discount).label("discounts"),
            (-entry_sum(capture, entry_account == fee_revenue)).label("fees"),
            entry_sum(refund, shares).label("refunds"),
            entry_sum(refund, entry_account == fee_revenue).label("fees_returned"),
            (-entry_sum(entry_account == account)).label("net"),
        )
        .select_from(LedgerEntry)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .join(TicketType, TicketType.id == LedgerEntry.ticket_type_id)
        .where(
            LedgerEntry.transaction_id.in_(ledger.touching(account)),
            LedgerEntry.currency == currency,
            period.covers(LedgerTransaction.created_at),
        )
        .group_by(TicketType.id, TicketType.name)
        .order_by(TicketType.name, TicketType.id)
    )
    for row in session.execute(query):
        figures = {"sales": row.sales, "discounts": row.discounts, "fees": row.fees,
                   "refunds": row.refunds, "fees_returned": row.fees_returned}  # fmt: skip
        yield ["ticket type", *who, None, None, None, row.name,
               *[Money(figures[k], currency) if k in figures else None for k in STATEMENT_FIGURES],
               Money(row.net, currency), None]  # fmt: skip


def _statement(
    session: Session, account: int, partner: Partner, currency: str, period: Period
) -> Iterator[list[Any]]:
    opening = ledger.partner_balance(session, partner, currency, before=period.since)
    who = [partner.id, partner.name, currency]
    yield ["opening", *who, period.since, None, None, gettext("Opening balance"),
           *[None] * len(STATEMENT_FIGURES), None, Money(opening, currency)]  # fmt: skip
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
               *[Money(getattr(row, key), currency) for key in STATEMENT_FIGURES],
               Money(row.balance, currency), Money(running, currency)]  # fmt: skip
    yield from _ticket_type_lines(session, account, currency, period, who)
    closing = ledger.partner_balance(session, partner, currency, before=period.until)
    if running != closing:
        raise ReportMismatch(
            gettext(
                "%(name)s's statement closes at %(ours)s %(currency)s; the ledger says %(ledger)s.",
                name=partner.name,
                ours=money(running),
                currency=currency,
                ledger=money(closing),
            )
        )
    yield ["closing", *who, period.until, None, None, gettext("Closing balance"),
           *[Money(totals[key], currency) for key in STATEMENT_FIGURES],
           Money(closing - opening, currency), Money(closing, currency)]  # fmt: skip


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

    def figures(currency: str, charged: int, returned: int, gateway: int) -> list[Money]:
        kept = charged - returned
        return [
            Money(cents, currency) for cents in (charged, returned, kept, gateway, kept - gateway)
        ]

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
                *figures(row.currency, row.charged, row.returned, row.gateway),
            ]
        for currency, total in sorted(totals.items()):
            yield ["total", None, currency, *figures(currency, *total)]

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
                   Money(row.amount_cents, row.currency), f"PAYOUT-{row.id}", None,
                   row.approved_at]  # fmt: skip
        for currency, (count, amount) in sorted(totals.items()):
            payouts = gettext("%(count)s payout(s)", count=count)
            yield ["total", None, None, payouts, currency, Money(amount, currency),
                   None, None, None]  # fmt: skip

    return PAYOUT_COLUMNS, rows()


BUILDERS = {
    ReportKind.SALES: sales_rows,
    ReportKind.STATEMENT: statement_rows,
    ReportKind.REVENUE: revenue_rows,
    ReportKind.PAYOUT_BATCH: payout_batch_rows,
}
