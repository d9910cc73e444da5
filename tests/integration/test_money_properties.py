"""Hypothesis drives random sequences of purchases, refunds, chargebacks, settlements (days
reconciled again once their report gained lines included) and payouts across two partners
through the money services, keeps its own model of where every cent should be, and checks the
ledger against it after every step (issue 4, point 7; issue 14, point 12): the ledger balances,
the bank holds exactly what settlements cleared less what was paid out, and no payout pays more
than the partner's settled money less its reserve."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import pytest
from flask import current_app
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import sim_acquirer
from app.extensions import db
from app.models import (
    Conflict,
    DomainError,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    LineKind,
    NotFound,
    Order,
    OrderStatus,
    Partner,
    Payment,
    PaymentStatus,
    Payout,
    PayoutItem,
    PayoutStatus,
    Settlement,
    SettlementLine,
)
from app.models.base import utcnow
from app.services import customers, ledger, payouts, purchase, refunds, settlement
from app.services.payments import SimulatedGateway
from app.services.scoping import SYSTEM
from app.sim_acquirer.api import acquirer_fee
from app.sim_acquirer.models import SimCharge, SimChargeback, SimRefund
from tests.support.builders import PartnerActor, make_event, make_partner
from tests.support.database import empty_domain_tables

pytestmark = pytest.mark.slow


CURRENCY = "BRL"
# Days back of the first settlement; each settlement moves what happened today to the next day.
FIRST_DAY_BACK = 60
# Two partners with different fees and prices: (fee percent, fixed fee per ticket, price).
PARTNERS = ((Decimal("10"), 100, 10000), (Decimal("7.5"), 35, 4990))
# Payout reserves a run may give each partner (percent of the settled net of the last 30 days,
# here all of it: the run's postings are all of today).
RESERVES = (Decimal(0), Decimal("10"), Decimal("33.33"))


@dataclass
class Sale:
    """What the model knows of one paid order."""

    payment_id: int
    order_id: int
    partner: int  # index into the machine's partners
    amount: int
    fee: int
    net: int
    ref: str  # the acquirer's charge id
    state: str = (
        "paid"  # paid | disputed (acquirer took it, not reconciled) | refunded | charged_back
    )
    fee_back: int = 0  # the platform fee given back by the refund or chargeback
    charge_settled: bool = False  # its charge matched a reconciled settlement line
    refund_settled: bool = False  # its refund was in a reconciled report
    capture_paid_out: bool = False  # the capture is an item of a payout
    reversal_paid_out: bool = False  # so is the refund or chargeback

    @property
    def reversed(self) -> bool:
        return self.state in ("refunded", "charged_back")

    @property
    def reversal_share(self) -> int:
        """What the refund or chargeback takes back from the partner's payable."""
        return self.amount - self.fee_back


@dataclass
class ModelPayout:
    payout_id: int
    partner: int
    amount: int
    status: str = PayoutStatus.PENDING.value
    # (payment id, whether this payout took its capture, and its refund or chargeback): what
    # cancelling the payout gives back to the next run
    covers: list[tuple[int, bool, bool]] = field(default_factory=list)
    exact: bool = True  # its amount is its items' sum


def _token() -> str:
    return sim_acquirer.tokenize(
        {"number": "4242424242424242", "exp_month": 12, "exp_year": utcnow().year + 1,
         "cvc": "123", "holder_name": "M"}
    )["token"]  # fmt: skip


def _sum(query) -> int:
    return db.session.scalar(query) or 0


class MoneyMachine(RuleBasedStateMachine):
    sales = Bundle("sales")
    payouts_made = Bundle("payouts")

    def __init__(self) -> None:
        super().__init__()
        empty_domain_tables(current_app)
        self.saved_fee_setting = current_app.config["REFUND_RETURNS_PLATFORM_FEE"]
        self.saved_acquirer_fees = (
            current_app.config["SIM_ACQUIRER_FEE_PERCENT"],
            current_app.config["SIM_ACQUIRER_FEE_FIXED_CENTS"],
        )
        current_app.config.update(
            SIM_ACQUIRER_FEE_PERCENT=Decimal("2.5"), SIM_ACQUIRER_FEE_FIXED_CENTS=30
        )
        self.partner_ids: list[int] = []
        self.event_ids: list[int] = []
        self.section_ids: list[int] = []
        for index, (percent, fixed, price) in enumerate(PARTNERS):
            partner = make_partner(f"Money {index}")
            partner.fee_percent, partner.fee_fixed_cents = percent, fixed
            db.session.commit()
            event = make_event(partner, f"Money Night {index}", rows=("A", "C"), seats=10)
            event.sections[0].price_cents = price
            event.publish()
            db.session.commit()
            self.partner_ids.append(partner.id)
            self.event_ids.append(event.id)
            self.section_ids.append(event.sections[0].id)
        sm = current_app.appbuilder.sm
        self.customer_ids = [
            customers.sign_up(db.session, sm, f"M{n}", f"m{n}-{uuid.uuid4().hex[:6]}@ex.com",
                              "Ingresso-Azul-77").id
            for n in range(2)
        ]  # fmt: skip
        self.midnight = dt.datetime.combine(utcnow().date(), dt.time.min)
        self.days_back = FIRST_DAY_BACK
        self.reconciled: list[dt.date] = []
        self.settled_days: set[dt.date] = set()  # days with a settlement row
        self.reserves = [Decimal(0)] * len(PARTNERS)
        self.model: dict[int, Sale] = {}  # payment id -> sale
        self.payouts: dict[int, ModelPayout] = {}
        self.fee_back_setting = True

    @initialize(
        target=sales,
        returns_fee=st.booleans(),
        seats=st.tuples(*[st.integers(1, 3)] * 2),
        reserves=st.tuples(*[st.sampled_from(RESERVES)] * 2),
    )
    def first_sales(self, returns_fee, seats, reserves):
        """Whether a refund gives the platform fee back (a platform setting) for this run, each
        partner's payout reserve, and a first sale for each partner."""
        self.fee_back_setting = returns_fee
        current_app.config["REFUND_RETURNS_PLATFORM_FEE"] = returns_fee
        for partner_id, percent in zip(self.partner_ids, reserves, strict=True):
            db.session.get(Partner, partner_id).set_reserve(percent)
        db.session.commit()
        self.reserves = list(reserves)
        return multiple(*[self._buy(p, p, n) for p, n in enumerate(seats)])

    # ----------------------------------------------------------------------------- rules

    @rule(target=sales, partner=st.integers(0, 1), customer=st.integers(0, 1),
          seats=st.integers(1, 3))  # fmt: skip
    def buy(self, partner, customer, seats):
        payment_id = self._buy(partner, customer, seats)
        return multiple() if payment_id is None else payment_id

    def _buy(self, partner: int, customer: int, seats: int) -> int | None:
        try:
            hold = purchase.hold.reserve_spots(
                db.session,
                self.customer_ids[customer],
                self.event_ids[partner],
                section_id=self.section_ids[partner],
                quantity=seats,
            )
        except DomainError:  # sold out
            db.session.rollback()
            return None
        result = purchase.checkout.checkout(
            db.session,
            SimulatedGateway(),
            self.customer_ids[customer],
            hold.id,
            _token(),
            uuid.uuid4().hex,
        )
        payment = db.session.get(Payment, result.payment_id)
        price = PARTNERS[partner][2]
        assert payment.amount_cents == seats * price
        assert payment.fee_cents + payment.net_cents == payment.amount_cents
        assert 0 < payment.fee_cents < payment.amount_cents
        sale = Sale(
            payment_id=payment.id,
            order_id=payment.order_id,
            partner=partner,
            amount=payment.amount_cents,
            fee=payment.fee_cents,
            net=payment.net_cents,
            ref=payment.gateway_ref,
        )
        self.model[payment.id] = sale
        db.session.rollback()
        return payment.id

    @rule(payment_id=sales, who=st.sampled_from(["system", "owner", "other partner"]))
    def refund(self, payment_id, who):
        sale = self.model[payment_id]
        actor = {
            "system": SYSTEM,
            "owner": PartnerActor(db.session.get(Partner, self.partner_ids[sale.partner])),
            "other partner": PartnerActor(
                db.session.get(Partner, self.partner_ids[1 - sale.partner])
            ),
        }[who]
        before, transactions = sale.state, self._transaction_count()
        try:
            order = refunds.refund_order(db.session, SimulatedGateway(), sale.order_id, actor)
        except NotFound:
            db.session.rollback()
            assert who == "other partner", "a partner refunds only its own orders"
        except refunds.RefundFailed:
            db.session.rollback()
            assert before == "disputed", "only a disputed charge cannot be refunded"
        except Conflict:
            db.session.rollback()
            assert before == "charged_back", "only a charged-back order refuses a refund"
        else:
            assert who != "other partner", "a partner refunded another partner's order"
            assert before in ("paid", "refunded")
            assert order.status == OrderStatus.REFUNDED
            if before == "paid":
                sale.state = "refunded"
                sale.fee_back = sale.fee if self.fee_back_setting else 0
        posted = self._transaction_count() - transactions
        assert posted == (1 if (before, sale.state) == ("paid", "refunded") else 0)
        db.session.rollback()

    @rule(payment_id=sales)
    def chargeback(self, payment_id):
        """The cardholder disputes the charge and the merchant loses: the acquirer takes the
        money back now; our books learn it from that day's settlement report."""
        sale = self.model[payment_id]
        dispute = sim_acquirer.chargeback(sale.ref, "fraudulent")
        if sale.state == "paid":
            assert dispute is not None and dispute["amount_cents"] == sale.amount
            sale.state = "disputed"
        else:
            assert dispute is None, "a refunded or already disputed charge is not taken twice"

    @rule()
    def settle(self):
        """Today's activity becomes the next unsettled past day, whose report is reconciled."""
        self._settle(self._move_today_back())

    @precondition(lambda self: self.reconciled)
    @rule()
    def settle_late_lines(self):
        """Today's activity reaches the acquirer's report of the last day reconciled (a report
        corrected after the fact), and that day is reconciled again: exactly the lines it
        gained are settled and posted."""
        self._settle(self._move_today_back(self.reconciled[-1]))

    def _settle(self, day: dt.date) -> None:
        disputed = [s for s in self.model.values() if s.state == "disputed"]
        transactions = self._transaction_count()
        summary = settlement.reconcile_day(db.session, SimulatedGateway(), day, utcnow())
        if day not in self.reconciled:
            self.reconciled.append(day)
        charges = [s for s in self.model.values() if not s.charge_settled]
        refunded = [s for s in self.model.values() if s.state == "refunded"]
        refunds_today = [s for s in refunded if not s.refund_settled]
        lines = len(charges) + len(refunds_today) + len(disputed)
        assert summary["lines"] == lines
        assert summary["chargebacks"] == len(disputed)
        assert summary["mismatches"] == 0
        assert summary["settlements"] == (1 if lines and day not in self.settled_days else 0)
        if lines:
            self.settled_days.add(day)
        cleared = (
            sum(s.amount for s in charges)
            - sum(s.amount for s in refunds_today)
            - sum(s.amount for s in disputed)
        )
        fees = sum(self._acquirer_fee(s) for s in charges)
        moved = bool(lines) and (cleared != 0 or fees != 0)
        assert summary["postings"] == (1 if moved else 0)
        for sale in charges:
            sale.charge_settled = True
        for sale in refunds_today:
            sale.refund_settled = True
        for sale in disputed:
            sale.state = "charged_back"
            sale.fee_back = sale.fee  # nobody chose to give it back: the whole sale reverses
        assert self._transaction_count() == transactions + len(disputed) + summary["postings"]
        db.session.rollback()

    @precondition(lambda self: self.reconciled)
    @rule()
    def replay_a_settled_day(self):
        transactions = self._transaction_count()
        summary = settlement.reconcile_day(
            db.session, SimulatedGateway(), self.reconciled[-1], utcnow()
        )
        assert {key: summary[key] for key in settlement.SUMMARY_KEYS} == dict.fromkeys(
            settlement.SUMMARY_KEYS, 0
        )
        assert self._transaction_count() == transactions
        db.session.rollback()

    @rule(target=payouts_made)
    def create_payouts(self):
        expected = {p: self._available(p) for p in range(len(self.partner_ids))}
        db.session.rollback()
        created = payouts.create_payouts(db.session, utcnow())
        by_partner = {}
        for payout_id in created:
            payout = db.session.get(Payout, payout_id)
            index = self.partner_ids.index(payout.partner_id)
            assert index not in by_partner, "one payout per partner and currency"
            by_partner[index] = payout
        for index in range(len(self.partner_ids)):
            if expected[index] <= 0:
                assert index not in by_partner, "nothing to pay, or a negative balance carried"
                continue
            payout = by_partner[index]
            # Exactly what was available at its creation: never more.
            assert payout.amount_cents == expected[index]
            listed = sum(i.amount_cents for i in payout.items)
            if (
                not self.reserves[index]
                and self._pending(index) == self._unsettled_share(index)
                and all(p.exact for p in self.payouts.values() if p.partner == index)
            ):
                # No reserve, nothing owed on unsettled payments: its statement adds up to it.
                assert payout.amount_cents == listed
            assert payout.status == PayoutStatus.PENDING and payout.currency == CURRENCY
            assert {i.ledger_transaction.cause_key for i in payout.items} == self._unpaid_keys(
                index
            )
            covers = []
            for sale in self._settled_of(index):
                took_capture = not sale.capture_paid_out
                took_reversal = sale.reversed and not sale.reversal_paid_out
                if took_capture or took_reversal:
                    covers.append((sale.payment_id, took_capture, took_reversal))
                sale.capture_paid_out = True
                if sale.reversed:
                    sale.reversal_paid_out = True
            self.payouts[payout.id] = ModelPayout(
                payout.id,
                index,
                payout.amount_cents,
                covers=covers,
                exact=payout.amount_cents == listed,
            )
            # Payouts made and paid never take more than the settled money less the reserve.
            assert self._available(index) == 0
            assert self._payable(index) >= self._in_payouts(index)
        db.session.rollback()
        return multiple(*created)

    @rule()
    def settle_and_pay_out(self):
        """Finance's week: the day is reconciled, payouts created, approved and paid."""
        self.settle()
        for payout_id in self.create_payouts().values:
            self.approve(payout_id)
            self.mark_paid(payout_id)

    def _overtaken(self, payout_id) -> bool:
        """A refund or chargeback since the payout was made left the partner's settled balance
        less its reserve short of it: finance is refused, cancels it, and its transactions go
        back to the next run."""
        model = self.payouts.get(payout_id)
        if model is None or model.status == PayoutStatus.PAID:
            return False
        if self._payable(model.partner) >= model.amount:
            return False
        # Finance is refused at its next step: approving a pending payout, paying an approved one.
        with pytest.raises(Conflict, match="less than this payout"):
            if model.status == PayoutStatus.PENDING:
                payouts.approve_payout(db.session, payout_id, SYSTEM, utcnow())
            else:
                payouts.mark_payout_paid(db.session, payout_id, "TED", SYSTEM, utcnow())
        db.session.rollback()
        payouts.cancel_payout(db.session, payout_id, SYSTEM)
        for payment_id, took_capture, took_reversal in model.covers:
            sale = next(s for s in self.model.values() if s.payment_id == payment_id)
            if took_capture:
                sale.capture_paid_out = False
            if took_reversal:
                sale.reversal_paid_out = False
        del self.payouts[payout_id]
        return True

    def _cancelled(self, payout_id) -> bool:
        if payout_id in self.payouts:
            return False
        with pytest.raises(NotFound):
            payouts.approve_payout(db.session, payout_id, SYSTEM, utcnow())
        db.session.rollback()
        return True

    @rule(payout_id=payouts_made)
    def approve(self, payout_id):
        if self._cancelled(payout_id) or self._overtaken(payout_id):
            return
        model = self.payouts[payout_id]
        try:
            payouts.approve_payout(db.session, payout_id, SYSTEM, utcnow())
        except Conflict:
            db.session.rollback()
            assert model.status != PayoutStatus.PENDING
        else:
            assert model.status == PayoutStatus.PENDING
            model.status = PayoutStatus.APPROVED.value

    @rule(payout_id=payouts_made)
    def mark_paid(self, payout_id):
        if self._cancelled(payout_id) or self._overtaken(payout_id):
            return
        model = self.payouts[payout_id]
        try:
            payouts.mark_payout_paid(db.session, payout_id, f"TED {payout_id}", SYSTEM, utcnow())
        except Conflict:
            db.session.rollback()
            assert model.status != PayoutStatus.APPROVED
        else:
            assert model.status == PayoutStatus.APPROVED
            model.status = PayoutStatus.PAID.value
            # Paid out of settled money, the reserve kept: never what the acquirer still owes.
            assert self._payable(model.partner) >= 0

    # -------------------------------------------------------------------------- invariants

    @invariant()
    def every_transaction_sums_to_zero_per_currency(self):
        db.session.rollback()
        per_transaction = db.session.execute(
            select(LedgerEntry.transaction_id, LedgerEntry.currency,
                   func.sum(LedgerEntry.amount_cents), func.count())
            .group_by(LedgerEntry.transaction_id, LedgerEntry.currency)
        ).all()  # fmt: skip
        assert all(total == 0 and count >= 2 for _, _, total, count in per_transaction)
        transactions = db.session.scalar(select(func.count()).select_from(LedgerTransaction))
        assert len({row[0] for row in per_transaction}) == transactions, "no empty transaction"

    @invariant()
    def every_cause_is_posted_once(self):
        kinds = Counter(db.session.scalars(select(LedgerTransaction.kind)))
        sales = self.model.values()
        assert kinds["capture"] == len(self.model)
        assert kinds["refund"] == sum(s.state == "refunded" for s in sales)
        assert kinds["chargeback"] == sum(s.state == "charged_back" for s in sales)
        assert kinds["payout"] == sum(p.status == PayoutStatus.PAID for p in self.payouts.values())
        for payment in db.session.scalars(select(Payment)):
            sale = self.model[payment.id]
            assert (
                payment.status
                == {
                    "paid": PaymentStatus.CAPTURED,
                    "disputed": PaymentStatus.CAPTURED,
                    "refunded": PaymentStatus.REFUNDED,
                    "charged_back": PaymentStatus.CHARGED_BACK,
                }[sale.state]
            )
            order = db.session.get(Order, payment.order_id)
            assert order.status == (OrderStatus.REFUNDED if sale.reversed else OrderStatus.PAID)

    @invariant()
    def each_partner_balance_is_its_sales_less_fees_refunds_chargebacks_and_payouts(self):
        statements = {
            s["partner_id"]: s for s in ledger.partner_statements(db.session, self.partner_ids)
        }
        for index, partner_id in enumerate(self.partner_ids):
            sales = [s for s in self.model.values() if s.partner == index]
            expected = {
                "sales": sum(s.amount for s in sales),
                "fees": sum(s.fee for s in sales),
                "refunds": sum(s.amount for s in sales if s.state == "refunded"),
                "chargebacks": sum(s.amount for s in sales if s.state == "charged_back"),
                "fees_returned": sum(s.fee_back for s in sales if s.reversed),
                "payouts": sum(
                    p.amount
                    for p in self.payouts.values()
                    if p.partner == index and p.status == PayoutStatus.PAID
                ),
            }
            expected["balance"] = (
                expected["sales"] - expected["fees"] - expected["refunds"]
                - expected["chargebacks"] + expected["fees_returned"] - expected["payouts"]
            )  # fmt: skip
            assert expected["balance"] == self._model_balance(index)
            statement = statements.get(partner_id)
            if statement is None:  # no sale yet: no payable account either
                assert not sales
                continue
            assert statement["currency"] == CURRENCY
            assert {key: statement[key] for key in expected} == expected
            partner = db.session.get(Partner, partner_id)
            assert ledger.partner_balance(db.session, partner, CURRENCY) == expected["balance"]

    @invariant()
    def payouts_cover_settled_transactions_once_and_never_exceed_them(self):
        items = db.session.execute(
            select(PayoutItem.payout_id, PayoutItem.ledger_transaction_id, PayoutItem.amount_cents)
        ).all()
        covered = [transaction_id for _, transaction_id, _ in items]
        assert len(covered) == len(set(covered)), "a transaction paid out twice"
        settled_payments = set(
            db.session.scalars(
                select(SettlementLine.payment_id).where(
                    SettlementLine.kind == LineKind.CHARGE, SettlementLine.payment_id.is_not(None)
                )
            )
        )
        assert settled_payments == {s.payment_id for s in self.model.values() if s.charge_settled}
        for payout in db.session.scalars(select(Payout)):
            model = self.payouts[payout.id]
            assert (payout.amount_cents, payout.status) == (model.amount, model.status)
            assert payout.amount_cents > 0
            payable = f"partner_payable:{payout.partner_id}"
            for item in payout.items:
                transaction = item.ledger_transaction
                assert transaction.payment_id in settled_payments, "only settled money is paid"
                shares = [-e.amount_cents for e in transaction.entries if e.account.code == payable]
                assert shares == [item.amount_cents]
        for index, partner_id in enumerate(self.partner_ids):
            funds = payouts.funds(db.session, partner_id, CURRENCY, utcnow())
            assert (funds.balance, funds.pending, funds.reserve, funds.in_payouts) == (
                self._model_balance(index), self._pending(index), self._reserve(index),
                self._in_payouts(index),
            )  # fmt: skip
            assert funds.available == self._available(index)
            settled_shares = _sum(
                select(func.sum(-LedgerEntry.amount_cents))
                .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
                .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
                .where(
                    LedgerAccount.partner_id == partner_id,
                    LedgerTransaction.payment_id.in_(settled_payments),
                )
            )
            assert settled_shares == self._settled_share(index)

    @invariant()
    def each_settlement_posted_exactly_its_lines(self):
        """A settlement's totals are its lines', and its postings moved exactly them from
        clearing to the bank: no settled payment's money is left in clearing."""
        for row in db.session.scalars(select(Settlement)):
            lines = row.lines
            assert row.line_count == len(lines)
            signed = {"charge": 1, "refund": -1, "chargeback": -1}
            cleared = sum(signed[line.kind] * line.amount_cents for line in lines)
            fees = sum(line.fee_cents for line in lines)
            assert (row.cleared_cents, row.fee_cents) == (cleared, fees)
            assert row.net_cents == cleared - fees
            cause = f"settlement:{row.gateway}:{row.day.isoformat()}:{row.currency}"
            postings = db.session.scalars(
                select(LedgerTransaction).where(
                    LedgerTransaction.kind == "settlement",
                    (LedgerTransaction.cause_key == cause)
                    | LedgerTransaction.cause_key.startswith(cause + ":"),
                )
            ).all()
            moved = Counter()
            for posting in postings:
                for entry in posting.entries:
                    moved[entry.account.code] += entry.amount_cents
            assert moved[ledger.CLEARING] == -cleared
            assert moved[ledger.BANK] == cleared - fees
            assert moved[ledger.GATEWAY_FEES] == fees
            if postings:
                assert row.ledger_transaction_id == min(p.id for p in postings)

    @invariant()
    def the_money_customers_paid_is_in_clearing_bank_and_fees_or_was_paid_out(self):
        sales = self.model.values()
        # What customers paid, net of refunds and chargebacks, as our payments record it...
        customers_net = sum(s.amount for s in sales if not s.reversed)
        assert customers_net == _sum(
            select(func.sum(Payment.amount_cents)).where(Payment.status == PaymentStatus.CAPTURED)
        )
        # ... and as the acquirer does (a dispute not reconciled yet is gone there, not here).
        disputed = sum(s.amount for s in sales if s.state == "disputed")
        charged = _sum(
            select(func.sum(SimCharge.amount_cents - SimCharge.refunded_cents)).where(
                SimCharge.status == "succeeded"
            )
        )
        taken_back = _sum(select(func.sum(SimChargeback.amount_cents)))
        assert charged - taken_back == customers_net - disputed
        refunded_at_acquirer = db.session.execute(
            select(SimRefund.charge_id, func.count(), func.sum(SimRefund.amount_cents))
            .group_by(SimRefund.charge_id)
        ).all()  # fmt: skip
        by_ref = {s.ref: s for s in sales}
        assert all(count == 1 for _, count, _ in refunded_at_acquirer), "a charge refunded twice"
        assert {ref: amount for ref, _, amount in refunded_at_acquirer} == {
            s.ref: s.amount for s in sales if s.state == "refunded"
        }
        assert set(by_ref) >= {ref for ref, _, _ in refunded_at_acquirer}

        balances = self._balances()
        paid_out = sum(p.amount for p in self.payouts.values() if p.status == PayoutStatus.PAID)
        # Where the money is (debit-normal accounts: assets and the acquirer's fee expense)...
        clearing, bank, gateway_fees = (
            balances[ledger.CLEARING], balances[ledger.BANK], balances[ledger.GATEWAY_FEES]
        )  # fmt: skip
        assert customers_net == clearing + bank + gateway_fees + paid_out
        # ... and whose it is (credit-normal: the platform's fee revenue, what is owed to the
        # partners and to customers of unfulfilled orders), all from the same postings.
        fee_revenue = -balances[ledger.FEE_REVENUE]
        payables = -sum(v for code, v in balances.items() if code.startswith("partner_payable:"))
        refunds_payable = -balances[ledger.REFUNDS_PAYABLE]
        assert customers_net == fee_revenue + payables + refunds_payable + paid_out
        assert sum(balances.values()) == 0

        # Each account, against the model.
        settled_charges = [s for s in sales if s.charge_settled]
        assert clearing == sum(s.amount for s in sales if not s.charge_settled) - sum(
            s.amount for s in sales if s.state == "refunded" and not s.refund_settled
        )
        assert gateway_fees == sum(self._acquirer_fee(s) for s in settled_charges)
        assert bank == (
            sum(s.amount - self._acquirer_fee(s) for s in settled_charges)
            - sum(s.amount for s in sales if s.state == "refunded" and s.refund_settled)
            - sum(s.amount for s in sales if s.state == "charged_back")
            - paid_out
        )
        assert fee_revenue == sum(s.fee for s in sales) - sum(s.fee_back for s in sales)
        assert refunds_payable == 0
        db.session.rollback()

    def teardown(self) -> None:
        db.session.rollback()
        current_app.config["REFUND_RETURNS_PLATFORM_FEE"] = self.saved_fee_setting
        percent, fixed = self.saved_acquirer_fees
        current_app.config.update(
            SIM_ACQUIRER_FEE_PERCENT=percent, SIM_ACQUIRER_FEE_FIXED_CENTS=fixed
        )

    # ---------------------------------------------------------------------------- helpers

    def _transaction_count(self) -> int:
        return db.session.scalar(select(func.count()).select_from(LedgerTransaction))

    def _balances(self) -> dict[str, int]:
        """Every account's balance (debits minus credits), by code; zero when unused."""
        rows = db.session.execute(
            select(LedgerAccount.code, func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
            .join(LedgerEntry, LedgerEntry.account_id == LedgerAccount.id, isouter=True)
            .group_by(LedgerAccount.code)
        ).all()
        balances = dict.fromkeys(ledger.PLATFORM_ACCOUNTS, 0)
        balances.update({code: int(total) for code, total in rows})
        return balances

    def _acquirer_fee(self, sale: Sale) -> int:
        return acquirer_fee(sale.amount, Decimal("2.5"), 30)

    def _settled_of(self, partner: int) -> list[Sale]:
        return [s for s in self.model.values() if s.partner == partner and s.charge_settled]

    def _model_balance(self, partner: int) -> int:
        """What the model says the platform owes the partner."""
        total = 0
        for sale in self.model.values():
            if sale.partner != partner:
                continue
            total += sale.net
            if sale.reversed:
                total -= sale.reversal_share
        paid = PayoutStatus.PAID
        total -= sum(
            p.amount for p in self.payouts.values() if p.partner == partner and p.status == paid
        )
        return total

    @staticmethod
    def _share(sale: Sale) -> int:
        """The sale's share in the partner's payable, its refund or chargeback taken off."""
        return sale.net - (sale.reversal_share if sale.reversed else 0)

    def _settled_share(self, partner: int) -> int:
        return sum(self._share(s) for s in self._settled_of(partner))

    def _unsettled_share(self, partner: int) -> int:
        return sum(
            self._share(s)
            for s in self.model.values()
            if s.partner == partner and not s.charge_settled
        )

    def _pending(self, partner: int) -> int:
        """Owed on payments the acquirer has not settled: not paid out yet."""
        return max(0, self._unsettled_share(partner))

    def _reserve(self, partner: int) -> int:
        """The reserve's percentage of the settled net (all of the run's postings are recent)."""
        net = self._settled_share(partner)
        if net <= 0:
            return 0
        held = Decimal(net) * self.reserves[partner] / 100
        return int(held.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def _payable(self, partner: int) -> int:
        """What payouts paid from now on may take: the settled balance less the reserve."""
        return self._model_balance(partner) - self._pending(partner) - self._reserve(partner)

    def _in_payouts(self, partner: int) -> int:
        return sum(
            p.amount
            for p in self.payouts.values()
            if p.partner == partner and p.status != PayoutStatus.PAID
        )

    def _available(self, partner: int) -> int:
        return max(0, self._payable(partner) - self._in_payouts(partner))

    def _unpaid_keys(self, partner: int) -> set[str]:
        keys = set()
        for sale in self._settled_of(partner):
            if not sale.capture_paid_out:
                keys.add(f"capture:payment:{sale.payment_id}")
            if sale.reversed and not sale.reversal_paid_out:
                kind = "refund" if sale.state == "refunded" else "chargeback"
                keys.add(f"{kind}:payment:{sale.payment_id}")
        return keys

    def _move_today_back(self, day: dt.date | None = None) -> dt.date:
        """What happened since the run began (at the acquirer and here) happened on ``day`` or
        the next unsettled past day, which is over: its report can be reconciled (as
        test_settlement's happened_days_ago, but each settlement gets a day of its own, in
        order)."""
        if day is None:
            day = self.midnight.date() - dt.timedelta(days=self.days_back)
            self.days_back -= 1
        shift = dt.timedelta(days=(self.midnight.date() - day).days)
        db.session.rollback()
        with Session(db.engine) as session:
            for model, columns in (
                (SimCharge, ["created_at"]),
                (SimRefund, ["created_at"]),
                (SimChargeback, ["created_at"]),
                (Payment, ["created_at", "captured_at", "refunded_at", "charged_back_at"]),
            ):
                for row in session.scalars(select(model)):
                    for column in columns:
                        value = getattr(row, column)
                        if value is not None and value >= self.midnight:
                            setattr(row, column, value - shift)
            session.commit()
        db.session.expire_all()
        return day


MoneyMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_money_invariants_hold_under_random_sequences(db_context):
    MoneyMachine.TestCase().runTest()
