"""Payouts to partners (ARCHITECTURE.md, "Money").

Only *settled* money is paid out. A payment is settled once its charge matched a line of a
reconciled settlement, which posts that line's money from gateway clearing to the bank in the
same database transaction (services/settlement.py). From the ledger, per partner and currency:

- balance: what the platform owes the partner (its payable: sales - fees - refunds -
  chargebacks - payouts paid);
- pending: of it, the partner's share of payments not settled yet (their sales less their
  refunds and chargebacks; never below zero: a partner owing on unsettled payments owes it out
  of its settled money);
- reserve: the partner's ``reserve_percent`` of its settled net of the last RESERVE_DAYS days
  (its share of the sales, refunds and chargebacks of settled payments posted in that window),
  held back for the refunds and chargebacks to come: a rolling reserve, each sale's part of it
  released RESERVE_DAYS after the sale;
- in payouts: payouts made and not paid yet;
- available = balance - pending - reserve - in payouts, never below zero: what the next payout
  pays.

A refund or chargeback after a payout takes its share from the partner's balance, which may go
below zero: the partner then owes the platform, nothing is paid out until later sales, once
settled, have paid it back (the balance is carried forward). A payout made before such a
refund is paid only if the balance less pending and reserve still covers it when finance
approves it and when it is marked paid; otherwise finance cancels it and the next run pays what
is due.

Each payout lists, as its items, the settled ledger transactions touching the partner's
payable that no payout listed before (its statement: an item's transaction is unique); without
a reserve and with nothing owed on unsettled payments, the items add up to the payout.
Finance approves a payout, then marks it paid with the bank reference, which posts it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from flask_babel import gettext
from sqlalchemy import Select, and_, exists, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app import metrics
from app.failpoints import failpoint
from app.models import (
    Conflict,
    Forbidden,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    LineKind,
    Partner,
    Payout,
    PayoutItem,
    SettlementLine,
    format_money,
)
from app.models.payout import PayoutStatus
from app.services import ledger
from app.services.mail import partner_mails
from app.services.scoping import Actor, get_owned_many, is_platform_staff
from app.services.webhooks import outbox as webhooks

log = logging.getLogger(__name__)

UNPAID = (PayoutStatus.PENDING, PayoutStatus.APPROVED)


@dataclass(frozen=True)
class Funds:
    """What the platform owes one partner in one currency, and how much of it may be paid out
    (see the module's docstring)."""

    partner_id: int
    currency: str
    balance: int
    pending: int
    reserve: int
    in_payouts: int

    @property
    def payable(self) -> int:
        """What the payouts paid from now on may take in all: the settled balance less the
        reserve."""
        return self.balance - self.pending - self.reserve

    @property
    def available(self) -> int:
        """What the next payout pays."""
        return max(0, self.payable - self.in_payouts)


def _settled() -> ColumnElement[bool]:
    """The ledger transaction is of a settled payment."""
    settled_payments = select(SettlementLine.payment_id).where(
        SettlementLine.kind == LineKind.CHARGE, SettlementLine.payment_id.is_not(None)
    )
    return LedgerTransaction.payment_id.in_(settled_payments)


def partner_funds(
    session: Session, now: dt.datetime, partner_ids: list[int] | None = None
) -> list[Funds]:
    """Every partner's funds (or those of ``partner_ids``), per currency, by partner."""
    reserve_since = now - dt.timedelta(days=Partner.RESERVE_DAYS)
    unsettled = and_(LedgerTransaction.payment_id.is_not(None), ~_settled())
    recent = and_(_settled(), LedgerTransaction.created_at >= reserve_since)
    totals = (
        select(
            LedgerAccount.partner_id,
            LedgerEntry.currency,
            -func.coalesce(ledger.sum_cents(LedgerEntry.amount_cents), 0),
            -ledger.entry_sum(unsettled),
            -ledger.entry_sum(recent),
        )
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerAccount.partner_id.is_not(None))
        .group_by(LedgerAccount.partner_id, LedgerEntry.currency)
        .order_by(LedgerAccount.partner_id, LedgerEntry.currency)
    )
    unpaid = (
        select(Payout.partner_id, Payout.currency, ledger.sum_cents(Payout.amount_cents))
        .where(Payout.status.in_(UNPAID))
        .group_by(Payout.partner_id, Payout.currency)
    )
    if partner_ids is not None:
        totals = totals.where(LedgerAccount.partner_id.in_(partner_ids))
        unpaid = unpaid.where(Payout.partner_id.in_(partner_ids))
    in_payouts = {(p, c): amount for p, c, amount in session.execute(unpaid)}
    rows = session.execute(totals).all()
    partners = {
        partner.id: partner
        for partner in session.scalars(select(Partner).where(Partner.id.in_({r[0] for r in rows})))
    }
    return [
        Funds(
            partner_id=partner_id,
            currency=currency,
            balance=balance,
            pending=max(0, unsettled_share),
            reserve=partners[partner_id].reserve_cents(recent_share),
            in_payouts=in_payouts.get((partner_id, currency), 0),
        )
        for partner_id, currency, balance, unsettled_share, recent_share in rows
    ]


def funds(session: Session, partner_id: int, currency: str, now: dt.datetime) -> Funds:
    """One partner's funds in one currency (all zero before its first sale)."""
    for found in partner_funds(session, now, [partner_id]):
        if found.currency == currency:
            return found
    return Funds(partner_id, currency, 0, 0, 0, 0)


def partner_balances(
    session: Session, now: dt.datetime, partner_ids: list[int] | None = None
) -> list[dict]:
    """The partners' statements (``ledger.partner_statements``), each with its funds: pending,
    reserve, in payouts and available."""
    found = {(f.partner_id, f.currency): f for f in partner_funds(session, now, partner_ids)}
    balances = []
    for statement in ledger.partner_statements(session, partner_ids):
        key = (statement["partner_id"], statement["currency"])
        its = found.get(key) or Funds(*key, statement["balance"], 0, 0, 0)
        balances.append(
            {
                **statement,
                "pending": its.pending,
                "reserve": its.reserve,
                "in_payouts": its.in_payouts,
                "available": its.available,
            }
        )
    return balances


def _unlisted_settled_shares(partner_id: int, currency: str) -> Select[tuple[int, int]]:
    """(ledger transaction id, the partner's share) of the partner's settled transactions no
    payout lists yet; a share is positive when the platform owes more."""
    listed = exists().where(PayoutItem.ledger_transaction_id == LedgerTransaction.id)
    return (
        select(LedgerTransaction.id, -LedgerEntry.amount_cents)
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(
            LedgerAccount.partner_id == partner_id,
            LedgerEntry.currency == currency,
            _settled(),
            ~listed,
        )
        .order_by(LedgerTransaction.id)
    )


def create_payouts(session: Session, now: dt.datetime) -> list[int]:
    """One pending payout per partner and currency with money available, of all of it, each in
    its own transaction. The partner's row is locked and its funds read again under the lock,
    so a concurrent run (or finance paying a payout) waits and then finds nothing more to pay.
    Returns the ids created."""
    due = [(f.partner_id, f.currency) for f in partner_funds(session, now) if f.available > 0]
    session.rollback()
    created = []
    for partner_id, currency in due:
        _lock_partner(session, partner_id)
        payout = _payout_of_what_is_settled(session, partner_id, currency, now)
        if payout is None:
            session.rollback()
            continue
        session.add(payout)
        session.commit()
        created.append(payout.id)
        log.info("payout created", extra={"payout_id": payout.id, "amount": payout.amount_cents})
        failpoint("payouts.after_payout")  # a test kills the worker here (app/failpoints.py)
    return created


# Reads of a payout's amount and statement a settlement may come between, before giving up.
_SETTLED_MEANWHILE_TRIES = 5


def _payout_of_what_is_settled(
    session: Session, partner_id: int, currency: str, now: dt.datetime
) -> Payout | None:
    """The partner's payout of its available funds, listing the transactions it pays (the
    partner's row locked); None when nothing is available. The amount and the statement are
    two reads: a day another worker settles between them would list a transaction whose money
    the amount leaves out, so the amount is read again after the statement and both again
    until nothing came between (the lock cannot wait for a settlement, which takes no partner
    lock; a snapshot taken before the lock would miss a concurrent run's payout). None too when
    settlements kept coming between: the next run pays the partner."""
    for _ in range(_SETTLED_MEANWHILE_TRIES):
        amount = funds(session, partner_id, currency, now).available
        if amount <= 0:
            return None
        items = session.execute(_unlisted_settled_shares(partner_id, currency)).all()
        if funds(session, partner_id, currency, now).available == amount:
            payout = Payout(
                partner_id=partner_id, currency=currency, amount_cents=amount, created_at=now
            )
            payout.items = [
                PayoutItem(ledger_transaction_id=transaction_id, amount_cents=share)
                for transaction_id, share in items
            ]
            return payout
        log.info("a settlement came between a payout's reads", extra={"partner_id": partner_id})
    log.warning("settled funds kept changing: the next run pays", extra={"partner_id": partner_id})
    return None


def approve_payout(session: Session, payout_id: int, actor: Actor, now: dt.datetime) -> Payout:
    payout = _locked(session, payout_id, actor)
    payout.approve(getattr(actor, "id", None), now)
    _require_covered(session, payout, now)
    session.commit()
    return payout


def mark_payout_paid(
    session: Session, payout_id: int, bank_reference: str | None, actor: Actor, now: dt.datetime
) -> Payout:
    """The transfer was made: record its bank reference and post partner payable -> bank."""
    payout = _locked(session, payout_id, actor)
    payout.mark_paid(bank_reference, getattr(actor, "id", None), now)
    _require_covered(session, payout, now)
    payout.ledger_transaction_id = ledger.post_payout(session, payout)
    partner_mails.queue_payout_paid(session, payout)  # with its statement
    webhooks.queue_payout_paid(session, payout)
    session.commit()
    metrics.PAYOUTS_PAID.inc()
    metrics.PAYOUTS_PAID_CENTS.labels(payout.currency).inc(payout.amount_cents)
    log.info("payout paid", extra={"payout_id": payout.id, "amount": payout.amount_cents})
    return payout


def cancel_payout(session: Session, payout_id: int, actor: Actor) -> None:
    """Drop a payout that was not paid (for example one that refunds or chargebacks have
    overtaken): nothing was posted, and its transactions are free for the next payout run."""
    payout = _locked(session, payout_id, actor)
    if payout.status == PayoutStatus.PAID:
        raise Conflict(gettext("Payout %(id)s is paid: it cannot be cancelled.", id=payout.id))
    log.warning(
        "payout cancelled",
        extra={
            "payout_id": payout.id,
            "amount": payout.amount_cents,
            "by": getattr(actor, "id", None),
        },
    )
    for item in payout.items:
        session.delete(item)
    session.delete(payout)
    session.commit()


def _require_covered(session: Session, payout: Payout, now: dt.datetime) -> None:
    """No payout may pay money the acquirer has not settled, the reserve, or leave the partner
    owing the platform: refunds or chargebacks since the payout was made may have eaten into
    what covers it. The partner's row is locked first, so two payouts of one partner are
    checked and paid one after the other (each read the funds before the other posted, and
    both were paid)."""
    _lock_partner(session, payout.partner_id)
    covering = funds(session, payout.partner_id, payout.currency, now).payable
    if covering < payout.amount_cents:
        refusal = Conflict(
            gettext(
                "The partner's settled balance less its reserve is now %(available)s, "
                "less than this payout of %(payout)s (refunds or chargebacks since "
                "it was made): cancel it, and the next run pays what is due.",
                available=format_money(max(covering, 0), payout.currency),
                payout=format_money(payout.amount_cents, payout.currency),
            )
        )
        session.rollback()  # the payout's new status is not kept
        raise refusal


def _lock_partner(session: Session, partner_id: int) -> None:
    session.execute(select(Partner.id).where(Partner.id == partner_id).with_for_update())


def _locked(session: Session, payout_id: int, actor: Actor) -> Payout:
    """The payout, locked; only platform staff move payouts (a partner reads its own)."""
    if not is_platform_staff(actor):
        raise Forbidden(gettext("Only finance approves and pays payouts."))
    session.expire_all()  # the state others committed, not what this session remembers
    return get_owned_many(session, Payout, [payout_id], actor, lock=True)[0]
