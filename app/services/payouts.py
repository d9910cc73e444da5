"""Payouts to partners (ARCHITECTURE.md, "Money").

Only *settled* money is paid out: the ledger transactions touching a partner's payable whose
payment's charge matched a reconciled settlement line (its sale, and its refund or chargeback if
any), and that no payout covers yet. Each payout lists those transactions as its items; an item's
ledger transaction is unique, so nothing is paid twice and no payout exceeds the settled balance.
Finance approves a payout, then marks it paid with the bank reference, which posts it.
"""

from __future__ import annotations

import datetime as dt
import logging
from itertools import groupby

from sqlalchemy import Select, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

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
from app.services.scoping import Actor, get_owned_many, is_platform_staff

log = logging.getLogger(__name__)


def _unpaid_settled_shares() -> Select[tuple[int, str, int, int]]:
    """(partner id, currency, ledger transaction id, the partner's share) of every settled
    transaction no payout covers yet; a share is positive when the platform owes more."""
    settled_payments = select(SettlementLine.payment_id).where(
        SettlementLine.kind == LineKind.CHARGE, SettlementLine.payment_id.is_not(None)
    )
    paid_out = exists().where(PayoutItem.ledger_transaction_id == LedgerTransaction.id)
    return (
        select(
            LedgerAccount.partner_id,
            LedgerEntry.currency,
            LedgerTransaction.id,
            -LedgerEntry.amount_cents,
        )
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(
            LedgerAccount.partner_id.is_not(None),
            LedgerTransaction.payment_id.in_(settled_payments),
            ~paid_out,
        )
        .order_by(LedgerAccount.partner_id, LedgerEntry.currency, LedgerTransaction.id)
    )


def settled_balance(session: Session, partner_id: int, currency: str) -> int:
    """What a payout for the partner could pay now."""
    rows = session.execute(
        _unpaid_settled_shares().where(
            LedgerAccount.partner_id == partner_id, LedgerEntry.currency == currency
        )
    ).all()
    return sum(share for *_, share in rows)


def create_payouts(session: Session, now: dt.datetime) -> list[int]:
    """One pending payout per partner and currency whose settled balance is positive, each in
    its own transaction. A transaction a concurrent run claimed first makes this one's insert
    fail on the unique item: that payout is skipped. Returns the ids created."""
    rows = session.execute(_unpaid_settled_shares()).all()
    session.rollback()
    created = []
    for (partner_id, currency), group in groupby(rows, key=lambda row: (row[0], row[1])):
        shares = [(transaction_id, share) for _, _, transaction_id, share in group]
        amount = sum(share for _, share in shares)
        if amount <= 0:
            continue  # carried over: later sales pay it back first
        payout = Payout(
            partner_id=partner_id, currency=currency, amount_cents=amount, created_at=now
        )
        payout.items = [
            PayoutItem(ledger_transaction_id=transaction_id, amount_cents=share)
            for transaction_id, share in shares
        ]
        session.add(payout)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            continue
        created.append(payout.id)
        log.info("payout created", extra={"payout_id": payout.id, "amount": amount})
    return created


def approve_payout(session: Session, payout_id: int, actor: Actor, now: dt.datetime) -> Payout:
    payout = _locked(session, payout_id, actor)
    _require_covered(session, payout)
    payout.approve(getattr(actor, "id", None), now)
    session.commit()
    return payout


def mark_payout_paid(
    session: Session, payout_id: int, bank_reference: str | None, actor: Actor, now: dt.datetime
) -> Payout:
    """The transfer was made: record its bank reference and post partner payable -> bank."""
    payout = _locked(session, payout_id, actor)
    _require_covered(session, payout)
    payout.mark_paid(bank_reference, getattr(actor, "id", None), now)
    payout.ledger_transaction_id = ledger.post_payout(session, payout)
    session.commit()
    log.info("payout paid", extra={"payout_id": payout.id, "amount": payout.amount_cents})
    return payout


def cancel_payout(session: Session, payout_id: int, actor: Actor) -> None:
    """Drop a payout that was not paid (for example one that refunds or chargebacks have
    overtaken): nothing was posted, and its transactions are free for the next payout run."""
    payout = _locked(session, payout_id, actor)
    if payout.status == PayoutStatus.PAID:
        raise Conflict(f"Payout {payout.id} is paid: it cannot be cancelled.")
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


def _require_covered(session: Session, payout: Payout) -> None:
    """No payout may leave the partner owing the platform: refunds or chargebacks since the
    payout was made may have eaten into what it covers. The partner's row is locked first, so
    two payouts of one partner are checked and paid one after the other (each read the balance
    before the other posted, and both were paid)."""
    session.execute(select(Partner.id).where(Partner.id == payout.partner_id).with_for_update())
    owed = ledger.partner_balance(session, payout.partner, payout.currency)
    if owed < payout.amount_cents:
        raise Conflict(
            f"The partner is now owed {format_money(owed, payout.currency)}, less than this "
            f"payout of {format_money(payout.amount_cents, payout.currency)} (refunds or "
            "chargebacks since it was made): cancel it, and the next run pays what is due."
        )


def _locked(session: Session, payout_id: int, actor: Actor) -> Payout:
    """The payout, locked; only platform staff move payouts (a partner reads its own)."""
    if not is_platform_staff(actor):
        raise Forbidden("Only finance approves and pays payouts.")
    session.expire_all()  # the state others committed, not what this session remembers
    return get_owned_many(session, Payout, [payout_id], actor, lock=True)[0]
