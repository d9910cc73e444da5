"""Postings to the double-entry ledger (ARCHITECTURE.md, "Money"): what each money event moves.

Accounts: gateway clearing (money the acquirer owes us), platform bank, platform fee revenue,
gateway fee expense, refunds payable, and one payable per partner. Debits positive, credits
negative; every transaction sums to zero per currency and is posted once per cause.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CTE,
    BigInteger,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.models import Partner, Payment, PaymentRefund, Payout, Settlement
from app.models.base import utcnow
from app.models.ledger import (
    AccountKind,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    TransactionKind,
    check_balanced,
)
from app.services.after_commit import after_commit
from app.services.pg_writes import rows_of_arrays

CLEARING = "gateway_clearing"
BANK = "platform_bank"
FEE_REVENUE = "platform_fee_revenue"
GATEWAY_FEES = "gateway_fee_expense"
REFUNDS_PAYABLE = "refunds_payable"

PLATFORM_ACCOUNTS = {
    CLEARING: ("Gateway clearing", AccountKind.ASSET),
    BANK: ("Platform bank", AccountKind.ASSET),
    FEE_REVENUE: ("Platform fee revenue", AccountKind.REVENUE),
    GATEWAY_FEES: ("Gateway fee expense", AccountKind.EXPENSE),
    REFUNDS_PAYABLE: ("Refunds payable", AccountKind.LIABILITY),
}

# Transactions that give (part of) a sale back: a refund, or a chargeback after a dispute.
REVERSES_SALE = (TransactionKind.REFUND, TransactionKind.CHARGEBACK)


# Account ids by (database, code), learnt from committed transactions only: accounts are never
# deleted, so a sale need not look its three accounts up again (ARCHITECTURE.md, "Money").
_ACCOUNT_IDS: dict[tuple[str, str], int] = {}

AccountRef = LedgerAccount | int


def account(session: Session, code: str) -> LedgerAccount:
    """A platform account, created on first use."""
    return session.get(LedgerAccount, account_id(session, code))


def account_id(session: Session, code: str) -> int:
    name, kind = PLATFORM_ACCOUNTS[code]
    return _ensure_account(session, code=code, name=name, kind=kind, partner_id=None)


def partner_account(session: Session, partner: Partner) -> LedgerAccount:
    return session.get(LedgerAccount, partner_account_id(session, partner.id, partner.name))


def partner_account_id(session: Session, partner_id: int, partner_name: str) -> int:
    return _ensure_account(
        session,
        code=f"partner_payable:{partner_id}",
        name=f"Payable to {partner_name}",
        kind=AccountKind.LIABILITY,
        partner_id=partner_id,
    )


def forget_account_ids() -> None:
    """Drop the account id cache (tests that empty the ledger tables call this)."""
    _ACCOUNT_IDS.clear()


def _ensure_account(
    session: Session, *, code: str, name: str, kind: AccountKind, partner_id: int | None
) -> int:
    """Find or create an account. Concurrent first sales may both create it: the insert skips
    an existing code instead of failing the sale (INSERT ... ON CONFLICT DO NOTHING)."""
    bind = session.get_bind()
    key = (str(bind.url), code)
    found = _ACCOUNT_IDS.get(key)
    if found is not None:
        return found
    found = session.scalar(select(LedgerAccount.id).where(LedgerAccount.code == code))
    if found is None:
        session.execute(
            pg_insert(LedgerAccount)
            .values(code=code, name=name, kind=kind.value, partner_id=partner_id)
            .on_conflict_do_nothing()
        )
        found = session.scalars(select(LedgerAccount.id).where(LedgerAccount.code == code)).one()
    # Remembered once this transaction commits: a rolled-back insert must not be cached.
    after_commit(session, lambda: _ACCOUNT_IDS.__setitem__(key, found))
    return found


_transaction, _entry = LedgerTransaction.__table__, LedgerEntry.__table__
# A cause is posted once: a second posting of it (even a concurrent one) inserts nothing.
_NEW_TRANSACTION = (
    pg_insert(_transaction)
    .values(
        kind=bindparam("b_kind"),
        cause_key=bindparam("b_cause"),
        payment_id=bindparam("b_payment"),
        memo=bindparam("b_memo"),
        created_at=bindparam("b_at"),
    )
    .on_conflict_do_nothing(index_elements=["cause_key"])
    .returning(_transaction.c.id)
)
# The transaction and its entries (as arrays) in one statement.
_LINES = rows_of_arrays(
    account_id=("b_accounts", Integer),
    amount_cents=("b_amounts", BigInteger),
    currency=("b_currencies", String),
    ticket_type_id=("b_types", Integer),
    promo_code_id=("b_promo_codes", Integer),
)
_NEW = _NEW_TRANSACTION.cte("new_transaction")
_NEW_ENTRIES = (
    insert(_entry)
    .from_select(
        [
            "transaction_id",
            "account_id",
            "amount_cents",
            "currency",
            "ticket_type_id",
            "promo_code_id",
        ],
        select(
            _NEW.c.id,
            _LINES.c.account_id,
            _LINES.c.amount_cents,
            _LINES.c.currency,
            _LINES.c.ticket_type_id,
            _LINES.c.promo_code_id,
        ).select_from(_NEW.join(_LINES, literal(True))),  # one row per line
    )
    .returning(_entry.c.id)
    .cte("new_entries")
)
_POST_AT_ONCE = select(_NEW.c.id).add_cte(_NEW_ENTRIES)  # run, though nothing reads it


def post(
    session: Session,
    kind: TransactionKind,
    cause_key: str,
    lines: list[tuple[AccountRef, int, str]],
    *,
    payment: Payment | None = None,
    payment_id: int | None = None,
    memo: str | None = None,
    ticket_types: Sequence[int | None] | None = None,
    promo_codes: Sequence[int | None] | None = None,
) -> int:
    """Post one balanced transaction in the caller's database transaction and return its id; a
    cause already posted returns that transaction's id and posts nothing (ON CONFLICT: a
    concurrent posting of the same cause waits for the first and posts nothing either). One
    statement writes the transaction row and its entries (a sale's are steps of the sale's own
    statement instead: ``sale_posting``, ``posting_step``).
    ``ticket_types``: each line's ticket type (a sale or a refund split by type), else none;
    ``promo_codes``: each line's promo code (a sale's discount lines), else none."""
    posting = _posting(
        kind,
        cause_key,
        lines,
        payment_id=payment.id if payment else payment_id,
        memo=memo,
        ticket_types=ticket_types,
        promo_codes=promo_codes,
    )
    return _post(session, posting)


def _post(session: Session, posting: dict[str, Any]) -> int:
    session.flush()  # the payment and whatever else the entries refer to
    transaction_id = session.connection().execute(_POST_AT_ONCE, posting).scalar()
    if transaction_id is None:  # this cause was posted before: nothing more is posted
        return session.scalars(
            select(LedgerTransaction.id).where(LedgerTransaction.cause_key == posting["b_cause"])
        ).one()
    return transaction_id


def posting_step() -> CTE:
    """A posting as a step of another statement (a data-modifying CTE, which nothing need read:
    its transaction row is written with it, and nothing when its cause was posted before). Its
    parameters are those ``sale_posting`` gives."""
    return _NEW_ENTRIES


def _posting(
    kind: TransactionKind,
    cause_key: str,
    lines: list[tuple[AccountRef, int, str]],
    *,
    payment_id: int | None,
    memo: str | None,
    ticket_types: Sequence[int | None] | None,
    promo_codes: Sequence[int | None] | None,
) -> dict[str, Any]:
    """The parameters of a posting's statement, its lines kept balanced (LedgerError), lines
    of no amount left out."""
    kinds = list(ticket_types) if ticket_types is not None else [None] * len(lines)
    codes = list(promo_codes) if promo_codes is not None else [None] * len(lines)
    kept = [
        (line, kind, code)
        for line, kind, code in zip(lines, kinds, codes, strict=True)
        if line[1] != 0
    ]
    lines = [line for line, _, _ in kept]
    check_balanced(lines)
    return {
        "b_kind": kind.value,
        "b_cause": cause_key,
        "b_payment": payment_id,
        "b_memo": memo,
        "b_at": utcnow(),
        "b_accounts": [ref if isinstance(ref, int) else ref.id for ref, _, _ in lines],
        "b_amounts": [amount for _, amount, _ in lines],
        "b_currencies": [currency for _, _, currency in lines],
        "b_types": [kind for _, kind, _ in kept],
        "b_promo_codes": [code for _, _, code in kept],
    }


@dataclass(frozen=True)
class Sale:
    """A captured payment for a paid order, as the checkout read it (no ORM objects)."""

    payment_id: int
    order_id: int
    partner_id: int
    partner_name: str
    amount_cents: int
    fee_cents: int
    net_cents: int
    currency: str
    # What was paid by ticket type (None: the section's full price); empty: all of it untyped.
    by_type: tuple[tuple[int | None, int], ...] = ()
    # What promo codes took off, by (ticket type, promo code): (type, code, cents).
    discounts: tuple[tuple[int | None, int, int], ...] = ()

    @classmethod
    def of(cls, payment: Payment) -> Sale:
        partner = payment.order.event.partner
        return cls(
            payment.id,
            payment.order_id,
            partner.id,
            partner.name,
            payment.amount_cents,
            payment.fee_cents,
            payment.net_cents,
            payment.currency,
        )


def sale_posting(session: Session, sale: Sale) -> dict[str, Any]:
    """The posting of a sale, as the parameters of its statement (``posting_step``, ``post_sale``).
    A captured payment for a paid order: what the buyer paid is owed to us by the acquirer,
    split into the platform's fee and what we owe the partner. A sale with promo codes credits
    the partner the gross (the prices before the codes) less the fee, and debits it each code's
    discount on a line of its own (``promo_code_id``): the partner's payable moves by what was
    paid less the fee, and statements read gross, discount and net from the lines. The fee is
    the partner's rule on what was paid (after the discount)."""
    currency = sale.currency
    partner = partner_account_id(session, sale.partner_id, sale.partner_name)
    lines: list[tuple[AccountRef, int, str]] = [
        (account_id(session, CLEARING), sale.amount_cents, currency)
    ]
    kinds: list[int | None] = [None]
    codes: list[int | None] = [None]
    discounted: dict[int | None, int] = {}
    for kind, _, cents in sale.discounts:
        discounted[kind] = discounted.get(kind, 0) + cents
    # The fee and the partner's share split by ticket type (the fee in proportion to what each
    # type was paid), so statements show each type's sales; one type posts as before.
    by_type = list(sale.by_type) or [(None, sale.amount_cents)]
    for (kind, paid), fee in zip(
        by_type, split_in_proportion(sale.fee_cents, by_type), strict=True
    ):
        lines += [
            (account_id(session, FEE_REVENUE), -fee, currency),
            (partner, fee - paid - discounted.get(kind, 0), currency),
        ]
        kinds += [kind, kind]
        codes += [None, None]
    for kind, code, cents in sale.discounts:
        lines.append((partner, cents, currency))
        kinds.append(kind)
        codes.append(code)
    return _posting(
        TransactionKind.CAPTURE,
        f"capture:payment:{sale.payment_id}",
        lines,
        payment_id=sale.payment_id,
        memo=f"Order {sale.order_id}",
        ticket_types=kinds,
        promo_codes=codes,
    )


def post_sale(session: Session, sale: Sale) -> int:
    """Post a sale (``sale_posting``) in a statement of its own; the transaction's id. The
    purchase path posts it as steps of the sale's one statement instead (purchase/confirm.py)."""
    return _post(session, sale_posting(session, sale))


def gross_by_type(tickets: Iterable[Any]) -> tuple[tuple[int | None, int], ...]:
    """Tickets' prices (``price_cents``) summed by ``ticket_type_id``, in the order the types
    first come by ticket id: how a sale or a refund splits by type."""
    gross: dict[int | None, int] = {}
    for ticket in sorted(tickets, key=lambda t: t.id):
        gross[ticket.ticket_type_id] = gross.get(ticket.ticket_type_id, 0) + ticket.price_cents
    return tuple(gross.items())


def discounts_of(tickets: Iterable[Any]) -> tuple[tuple[int | None, int, int], ...]:
    """Tickets' discounts (``discount_cents`` of their ``promo_code_id``) summed by ticket type
    and code, in the order they first come by ticket id: a sale's discount lines."""
    found: dict[tuple[int | None, int], int] = {}
    for ticket in sorted(tickets, key=lambda t: t.id):
        if ticket.promo_code_id is not None and ticket.discount_cents:
            key = (ticket.ticket_type_id, ticket.promo_code_id)
            found[key] = found.get(key, 0) + ticket.discount_cents
    return tuple((kind, code, cents) for (kind, code), cents in found.items())


def split_in_proportion(total: int, weights: Sequence[tuple[object, int]]) -> list[int]:
    """``total`` cents split across ``weights`` (key, weight) in proportion, exactly: each gets
    its floor, the cents left go to the largest remainders (the first of equals)."""
    whole = sum(weight for _, weight in weights)
    if whole == 0:
        return [total] + [0] * (len(weights) - 1)
    floors = [total * weight // whole for _, weight in weights]
    left = total - sum(floors)
    remainders = sorted(range(len(weights)), key=lambda i: (-(total * weights[i][1] % whole), i))
    for i in remainders[:left]:
        floors[i] += 1
    return floors


def post_unsold_capture(session: Session, payment: Payment) -> int:
    """Money captured for an order that could not be fulfilled (its hold was lost): it is owed
    back to the customer, not to the partner."""
    return post(
        session,
        TransactionKind.CAPTURE,
        f"capture:payment:{payment.id}",
        [
            (account_id(session, CLEARING), payment.amount_cents, payment.currency),
            (account_id(session, REFUNDS_PAYABLE), -payment.amount_cents, payment.currency),
        ],
        payment=payment,
        memo=f"Order {payment.order_id} not fulfilled",
    )


def post_unsold_refund(session: Session, payment: Payment) -> int:
    """The refund of an unfulfilled order's capture."""
    return post(
        session,
        TransactionKind.REFUND,
        f"refund:payment:{payment.id}",
        [
            (account_id(session, REFUNDS_PAYABLE), payment.amount_cents, payment.currency),
            (account_id(session, CLEARING), -payment.amount_cents, payment.currency),
        ],
        payment=payment,
        memo=f"Order {payment.order_id} refunded",
    )


def sum_cents(column: Any) -> Any:
    """SUM of cents as a 64-bit integer (PostgreSQL sums BIGINT into NUMERIC, read as Decimal)."""
    return cast(func.sum(column), BigInteger)


def balance(
    session: Session, account_ref: AccountRef, currency: str, *, before: dt.datetime | None = None
) -> int:
    """Debits minus credits on an account (a liability's balance is negative); with ``before``,
    of the transactions posted before that moment only."""
    wanted = account_ref if isinstance(account_ref, int) else account_ref.id
    query = select(func.coalesce(sum_cents(LedgerEntry.amount_cents), 0)).where(
        LedgerEntry.account_id == wanted, LedgerEntry.currency == currency
    )
    if before is not None:
        query = query.join(LedgerTransaction).where(LedgerTransaction.created_at < before)
    return session.scalar(query) or 0


def partner_balance(
    session: Session, partner: Partner, currency: str, *, before: dt.datetime | None = None
) -> int:
    """What the platform owes the partner: sales - fees - refunds - payouts (posted before
    ``before``, when given)."""
    account = partner_account_id(session, partner.id, partner.name)
    return -balance(session, account, currency, before=before)


def post_refund(
    session: Session, refund: PaymentRefund, *, return_platform_fee: bool
) -> int | None:
    """A paid order refunded, in full or for some tickets: the refund's gross goes back out
    through the acquirer. The platform gives back the fee's share of it (the refund's
    ``fee_share_cents``), or (by platform setting) keeps it and the partner bears it; the
    partner gives back the rest. None when nothing moved (free tickets)."""
    if not refund.amount_cents:
        return None
    payment = refund.payment
    event_partner = payment.order.event.partner
    partner = partner_account_id(session, event_partner.id, event_partner.name)
    fee_back = refund.fee_share_cents if return_platform_fee else 0
    tickets = ", ".join(str(t.id) for t in refund.tickets)
    whole = refund.amount_cents == payment.amount_cents
    currency = payment.currency
    # Split by the refunded tickets' types, as the sale was (the fee back in proportion).
    by_type = list(gross_by_type(refund.tickets))
    if sum(gross for _, gross in by_type) != refund.amount_cents:
        by_type = [(None, refund.amount_cents)]
    lines: list[tuple[AccountRef, int, str]] = [
        (account_id(session, CLEARING), -refund.amount_cents, currency)
    ]
    kinds: list[int | None] = [None]
    for (kind, amount), back in zip(by_type, split_in_proportion(fee_back, by_type), strict=True):
        lines += [
            (partner, amount - back, currency),
            (account_id(session, FEE_REVENUE), back, currency),
        ]
        kinds += [kind, kind]
    return post(
        session,
        TransactionKind.REFUND,
        refund.idempotency_key,
        lines,
        payment=payment,
        memo=f"Order {payment.order_id} refunded" + ("" if whole else f": ticket {tickets}"),
        ticket_types=kinds,
    )


STATEMENT_KEYS = (
    "sales",
    "discounts",
    "fees",
    "refunds",
    "chargebacks",
    "fees_returned",
    "payouts",
    "balance",
)


def touching(account: int) -> Select[tuple[int]]:
    """The ids of the transactions with an entry on ``account``."""
    return select(LedgerEntry.transaction_id).where(LedgerEntry.account_id == account)


def entry_sum(*conditions: ColumnElement[bool]) -> ColumnElement[int]:
    """The sum of the amounts of the entries meeting every condition (0 when none does)."""
    return func.coalesce(sum_cents(case((and_(*conditions), LedgerEntry.amount_cents))), 0)


def statement_columns(session: Session, partner_account: int) -> list[ColumnElement[int]]:
    """A partner statement's figures (STATEMENT_KEYS) as sums over the entries of transactions
    touching the partner's payable (see ``touching``): sales at their gross (the prices before
    promo codes: what moved in gateway clearing and the codes' discounts), the discounts,
    refunds at what was paid back, the platform's fee and what of it went back, payouts, and
    ``balance``, the change of what the platform owes the partner. Always balance = sales -
    discounts - fees - refunds - chargebacks + fees returned - payouts."""
    clearing = account_id(session, CLEARING)
    fee_revenue = account_id(session, FEE_REVENUE)
    kind, entry_account = LedgerTransaction.kind, LedgerEntry.account_id
    total = entry_sum
    discounts = total(
        kind == TransactionKind.CAPTURE,
        entry_account == partner_account,
        LedgerEntry.promo_code_id.is_not(None),
    )
    return [
        (total(kind == TransactionKind.CAPTURE, entry_account == clearing) + discounts).label(
            "sales"
        ),
        discounts.label("discounts"),
        (-total(kind == TransactionKind.CAPTURE, entry_account == fee_revenue)).label("fees"),
        (-total(kind == TransactionKind.REFUND, entry_account == clearing)).label("refunds"),
        (-total(kind == TransactionKind.CHARGEBACK, entry_account == clearing)).label(
            "chargebacks"
        ),
        total(kind.in_(REVERSES_SALE), entry_account == fee_revenue).label("fees_returned"),
        total(kind == TransactionKind.PAYOUT, entry_account == partner_account).label("payouts"),
        (-total(entry_account == partner_account)).label("balance"),
    ]


def partner_statements(session: Session, partner_ids: list[int] | None = None) -> list[dict]:
    """Per partner and currency: sales (gross), promo code discounts, platform fees, refunds,
    chargebacks, fees returned, payouts and the balance the platform owes, all from the ledger
    (``statement_columns``)."""
    partner_accounts = select(LedgerAccount).where(LedgerAccount.partner_id.is_not(None))
    if partner_ids is not None:
        partner_accounts = partner_accounts.where(LedgerAccount.partner_id.in_(partner_ids))
    statements = []
    for row in session.scalars(partner_accounts.order_by(LedgerAccount.partner_id)).all():
        totals = session.execute(
            select(LedgerEntry.currency, *statement_columns(session, row.id))
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerEntry.transaction_id.in_(touching(row.id)))
            .group_by(LedgerEntry.currency)
            .order_by(LedgerEntry.currency)
        ).all()
        for currency, *figures in totals:
            statements.append(
                {
                    "partner_id": row.partner_id,
                    "partner": row.name,
                    "currency": currency,
                    **dict(zip(STATEMENT_KEYS, figures, strict=True)),
                }
            )
    return statements


def post_chargeback(session: Session, payment: Payment, *, reason: str | None = None) -> int:
    """A disputed payment the acquirer took back, all that was not refunded already: clearing
    loses it, the platform gives back the rest of its fee, the partner the rest of its net (a
    payment never refunded reverses its sale exactly). Recorded as a chargeback whatever the
    refund setting: nobody chose to give this money back."""
    gross = payment.refundable_cents
    fee = payment.fee_share(gross)
    event_partner = payment.order.event.partner
    return post(
        session,
        TransactionKind.CHARGEBACK,
        f"chargeback:payment:{payment.id}",
        [
            (partner_account_id(session, event_partner.id, event_partner.name), gross - fee,
             payment.currency),
            (account_id(session, FEE_REVENUE), fee, payment.currency),
            (account_id(session, CLEARING), -gross, payment.currency),
        ],
        payment=payment,
        memo=f"Order {payment.order_id} charged back" + (f": {reason}" if reason else ""),
    )  # fmt: skip


def post_settlement(
    session: Session, settlement: Settlement, cleared_cents: int, fee_cents: int
) -> int | None:
    """The acquirer paid out (more of) a day: what it cleared leaves gateway clearing, its fee
    is an expense, the net reaches the platform's bank. A settlement's first posting is keyed by
    its day; one for lines a corrected report added also by the settlement's line count then
    (lines are only ever added, so each count is posted once). None when nothing moved."""
    currency = settlement.currency
    lines = [
        (account_id(session, BANK), cleared_cents - fee_cents, currency),
        (account_id(session, GATEWAY_FEES), fee_cents, currency),
        (account_id(session, CLEARING), -cleared_cents, currency),
    ]
    if not any(amount for _, amount, _ in lines):
        return None
    cause = f"settlement:{settlement.gateway}:{settlement.day.isoformat()}:{currency}"
    memo = f"Settlement {settlement}"
    if settlement.ledger_transaction_id is not None:
        cause += f":{settlement.line_count}"
        memo += f": lines the acquirer added, {settlement.line_count} in all"
    return post(session, TransactionKind.SETTLEMENT, cause, lines, memo=memo)


def post_payout(session: Session, payout: Payout) -> int:
    """A payout transferred to the partner: its payable drops, so does the platform's bank."""
    partner = payout.partner
    return post(
        session,
        TransactionKind.PAYOUT,
        f"payout:{payout.id}",
        [
            (partner_account_id(session, partner.id, partner.name), payout.amount_cents,
             payout.currency),
            (account_id(session, BANK), -payout.amount_cents, payout.currency),
        ],
        memo=f"Payout {payout.id} to {partner.name}, bank reference {payout.bank_reference}",
    )  # fmt: skip
