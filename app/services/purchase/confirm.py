"""Confirm a charged attempt (ARCHITECTURE.md, "The purchase path", step 3): sell, or cancel and
refund.

In one transaction the payment is locked and settled with the gateway's answer. A declined
charge is recorded (CardDeclined, 402; the hold is kept for another card). An approved one is
captured and, if the hold still owns every spot of the order and the event still sells, the
tickets are issued (codes signed with the event's key), the spots sold, the order paid, the hold
converted, the partner's ``order.paid`` webhooks and the order's confirmation mail written and
the sale posted to the ledger, all in one statement. If the hold was lost meanwhile (it expired, was
released, or the unique live-ticket index refused), nothing is sold: the order is cancelled,
its spots go back on sale and the charge is refunded (HoldLost, 409); a refund the processor
did not answer is retried by the reconcile task (reconcile.py).

What a finished payment answers (CheckoutResult, CardDeclined, HoldLost) is decided here, for
a first attempt and for a retry replaying it (checkout.py) alike.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext
from sqlalchemy import Connection, Integer, Row, String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import metrics
from app.i18n import N_
from app.models import (
    Conflict,
    Customer,
    DomainError,
    Event,
    EventSection,
    EventSpot,
    Hold,
    Order,
    OrderStatus,
    Partner,
    PartnerUser,
    Payment,
    PaymentStatus,
    Ticket,
    TicketType,
)
from app.models.base import utcnow
from app.models.codes import TicketClaim, sign_ticket
from app.models.event import SALE_COLUMNS, sale_window
from app.models.order import hold_is_live, printed_label
from app.services import customers, ledger, waiting_room
from app.services.locking import busy_on_lock_failure
from app.services.mail import customer_mails, outbox
from app.services.payments import ChargeResult, ChargeStatus, PaymentGateway
from app.services.pg_writes import counted, row_count, rows_of_arrays
from app.services.purchase.release import give_back
from app.services.webhooks import outbox as webhooks

log = logging.getLogger(__name__)


class CardDeclined(DomainError):
    status = 402
    code = "card_declined"


class HoldLost(Conflict):
    code = "hold_lost"


@dataclass(frozen=True)
class CheckoutResult:
    order_id: int
    payment_id: int
    replayed: bool  # True when a retry returned the first attempt's result
    # The paid order as the API shows it, when the confirmation had all of it at hand (it
    # spares reading it back); None otherwise: read it with customers.order_record.
    record: customers.OrderRecord | None = None


def raise_for_failure(payment: Payment) -> None:
    """What a finished payment that sold nothing answers: its decline, or its lost hold."""
    if payment.status in (PaymentStatus.DECLINED, PaymentStatus.FAILED):
        raise CardDeclined(
            _decline_message(payment.failure_reason),
            reason=payment.failure_reason or "card_declined",
        )
    if payment.order.status == OrderStatus.CANCELLED:
        refunded = payment.status == PaymentStatus.REFUNDED
        raise HoldLost(
            gettext(
                "Your seats were released before the payment completed; the charge was refunded."
            )
            if refunded
            else gettext(
                "Your seats were released before the payment completed; the charge is being "
                "refunded."
            ),
            order_id=payment.order_id,
            refunded=refunded,
        )


DECLINE_MESSAGES = {
    "card_declined": N_("Your card was declined."),
    "insufficient_funds": N_("Your card was declined: insufficient funds."),
    "processing_error": N_("The card processor had an error; nothing was charged. Try again."),
    "invalid_token": N_("The card could not be read; enter it again."),
    "token_already_used": N_(
        "This card entry was already used for a payment; enter the card again."
    ),
    "token_expired": N_("This card entry expired; enter the card again."),
}


def _decline_message(reason: str | None) -> str:
    return gettext(DECLINE_MESSAGES.get(reason or "", DECLINE_MESSAGES["card_declined"]))


_payment, _order, _ticket = Payment.__table__, Order.__table__, Ticket.__table__
_hold, _spot, _section = Hold.__table__, EventSpot.__table__, EventSection.__table__
_event, _partner, _type = Event.__table__, Partner.__table__, TicketType.__table__
_customer, _user = Customer.__table__, PartnerUser.__table__

# Core statements built once, as in checkout.py (bench/onsale.py).
_ALL_PAYMENTS = _payment.alias("order_payment")
_LOCK_PAYMENT = (
    select(
        *SALE_COLUMNS,
        _payment.c.status.label("payment_status"),
        _payment.c.order_id,
        _payment.c.amount_cents,
        _payment.c.fee_cents,
        _payment.c.net_cents,
        _payment.c.currency,
        _payment.c.refunded_cents,
        _payment.c.card_brand,
        _payment.c.card_last4,
        _payment.c.failure_reason,
        _order.c.status.label("order_status"),
        _order.c.hold_id,
        _order.c.event_id,
        _order.c.total_cents,
        _order.c.created_at,
        select(func.count())
        .where(_ALL_PAYMENTS.c.order_id == _order.c.id)
        .scalar_subquery()
        .label("payments_of_order"),
        _event.c.signing_key,
        _event.c.waiting_room_per_minute,
        _order.c.customer_id,
        _partner.c.id.label("partner_id"),
        _partner.c.name.label("partner_name"),
        # Whom the order's confirmation goes to, in which language, held or not: the sale
        # writes it without looking the customer up (customer_mails.order_paid_values).
        _customer.c.email.label("customer_email"),
        _customer.c.email_confirmed_at,
        _customer.c.user_id.label("customer_user_id"),
        _user.c.locale.label("customer_locale"),
    )
    .select_from(
        _payment.join(_order, _order.c.id == _payment.c.order_id)
        .join(_event, _event.c.id == _order.c.event_id)
        .join(_partner, _partner.c.id == _event.c.partner_id)
        .join(_customer, _customer.c.id == _order.c.customer_id)
        .outerjoin(_user, _user.c.id == _customer.c.user_id)
    )
    .where(_payment.c.id == bindparam("payment_id"))
    .with_for_update(of=_payment)
)
_LOCK_HOLD = (
    select(_hold.c.status, _hold.c.expires_at, _hold.c.created_at)
    .where(_hold.c.id == bindparam("hold_id"))
    .with_for_update()
)
# The order's tickets with their spots, the spots locked in id order.
_LOCK_TICKET_SPOTS = (
    select(
        _ticket.c.id,
        _ticket.c.status,
        _spot.c.id.label("spot_id"),
        _spot.c.status.label("spot_status"),
        _spot.c.hold_id,
        _spot.c.label,
        _section.c.name.label("section"),
        _ticket.c.price_cents,
        _ticket.c.holder_name,
        _ticket.c.ticket_type_id,
        _type.c.name.label("ticket_type"),
        _ticket.c.promo_code_id,
        _ticket.c.discount_cents,
    )
    .select_from(
        _ticket.join(_spot, _spot.c.id == _ticket.c.spot_id)
        .join(_section, _section.c.id == _ticket.c.section_id)
        .outerjoin(_type, _type.c.id == _ticket.c.ticket_type_id)
    )
    .where(_ticket.c.order_id == bindparam("order_id"))
    .order_by(_spot.c.id)
    .with_for_update(of=_spot)
)
# The writes of a sale name their parameters b_* (the webhooks' w_*, the mail's m_*): an UPDATE
# takes any parameter named as one of its table's columns as a new value (and, in a statement of
# several, any of them). Each is its
# model's transition (app/models/order.py, payment.py, spot.py): it leaves from the statuses, and
# writes the columns, that the model's methods do.
_THIS_PAYMENT = _payment.c.id == bindparam("b_payment_id")
_CAPTURE = Payment.CAPTURE.update(
    _payment, _THIS_PAYMENT, gateway_ref=bindparam("b_reference"), captured_at=bindparam("now")
)
_CAPTURE_WITH_CARD = _CAPTURE.values(
    card_brand=bindparam("b_brand"),
    card_last4=bindparam("b_last4"),
    card_exp_month=bindparam("b_exp_month"),
    card_exp_year=bindparam("b_exp_year"),
)
_MARK_ORDER_PAID = Order.PAY.update(
    _order, _order.c.id == bindparam("b_order_id"), paid_at=bindparam("now")
)
_CONVERT_HOLD = Hold.CONVERT.update(_hold, _hold.c.id == bindparam("b_hold_id"))
# Sold to the hold that holds them, and to no other.
_SELL_SPOTS = EventSpot.SELL.update(
    _spot,
    # One array parameter, not an expanding IN: SQLAlchemy would render the whole statement's
    # text anew at every execution to spell out the list.
    _spot.c.id == any_(bindparam("ids", type_=ARRAY(Integer))),
    _spot.c.hold_id == bindparam("b_hold_id"),
)


# The writes of a sale go in one statement of data-modifying CTEs, built from the
# statements above (the tickets' codes as arrays), answering each one's row count: one round
# trip instead of eight (bench/purchase_cost.py).
_CODES = rows_of_arrays(id=("b_ticket_ids", Integer), code=("b_codes", String))
_ISSUE_TICKETS = Ticket.ISSUE.update(
    _ticket, _ticket.c.id == _CODES.c.id, code=_CODES.c.code, issued_at=bindparam("now")
)


def _at_once(capture: Any) -> Any:
    steps = {
        "captured": capture,
        "sold": _SELL_SPOTS,
        "issued": _ISSUE_TICKETS,
        "paid": _MARK_ORDER_PAID,
        "converted": _CONVERT_HOLD,
    }
    # The order.paid deliveries to the partner's endpoints (none: it writes nothing), and which
    # endpoints got one, for their task after the commit (not those whose delivery waits behind
    # an older one's retry: the sweep that sends it goes on with this one).
    hooked = webhooks.order_paid_step().cte("hooked")
    # The order's confirmation mail (its id; none if it was written before) and the sale's
    # posting in the ledger: they exist exactly when the sale commits.
    mailed = outbox.queue_step()
    return select(
        *(row_count(counted(step, name)) for name, step in steps.items()),
        select(func.array_agg(hooked.c.endpoint_id).filter(~hooked.c.waits)).scalar_subquery(),
        select(mailed.c.id).scalar_subquery(),
    ).add_cte(ledger.posting_step())


_SALE_AT_ONCE = {False: _at_once(_CAPTURE), True: _at_once(_CAPTURE_WITH_CARD)}


class _Lost(Exception):
    """The hold no longer owns every spot of the order: nothing may be sold."""


def confirm(
    session: Session, gateway: PaymentGateway, payment_id: int, result: ChargeResult
) -> CheckoutResult:
    """Step 3, in one transaction: settle the payment and, if the hold still owns every spot,
    issue the tickets (signed codes), sell the spots, mark the order paid and post the sale."""
    status, reference, reason = result.status, result.reference, result.reason
    now = utcnow()
    session.expire_all()  # what other requests committed while the card was charged
    ids = {"payment_id": payment_id, "b_payment_id": payment_id, "now": now}
    card = result.card  # what the gateway says of the card: never the number
    card_values = (
        {
            "card_brand": card.brand,
            "card_last4": card.last4,
            "card_exp_month": card.exp_month,
            "card_exp_year": card.exp_year,
        }
        if card is not None
        else {}
    )
    with busy_on_lock_failure(session):
        conn = session.connection()
        pay = conn.execute(_LOCK_PAYMENT, ids).one()
        if pay.payment_status != PaymentStatus.PENDING:  # a retry or the reconcile task did it
            session.commit()
            payment = session.get(Payment, payment_id)
            raise_for_failure(payment)
            return CheckoutResult(payment.order_id, payment_id, replayed=True)
        if status != ChargeStatus.APPROVED:
            reason = reason or "card_declined"
            settle = Payment.FAIL if status == ChargeStatus.ERROR else Payment.DECLINE
            conn.execute(
                settle.update(_payment, _THIS_PAYMENT, failure_reason=reason).values(**card_values),
                ids,
            )
            session.commit()
            metrics.count_decline(reason)
            raise CardDeclined(_decline_message(reason), reason=reason)
        capture = {"b_payment_id": payment_id, "now": now, "b_reference": reference or ""}
        if card is not None:
            capture.update(
                b_brand=card.brand,
                b_last4=card.last4,
                b_exp_month=card.exp_month,
                b_exp_year=card.exp_year,
            )
        try:
            issued = _sell(session, payment_id, pay, now, capture)
            session.commit()
            lost = False
        except (_Lost, IntegrityError):
            # IntegrityError: the unique live-ticket index refused (never sell twice).
            session.rollback()
            lost = True
        if lost:
            _cancel_lost(session, payment_id, reference or "", now, card_values)
    if lost:
        refund_lost(session, gateway, payment_id)
        raise_for_failure(session.get(Payment, payment_id))
        return CheckoutResult(pay.order_id, payment_id, replayed=False)  # read back: not ours
    metrics.count_sale(len(issued), pay.amount_cents, pay.currency)
    session.expire_all()  # objects the caller loaded before see the sale
    log.info(
        "order paid",
        extra={"order_id": pay.order_id, "payment_id": payment_id, "amount": pay.amount_cents},
    )
    alone = pay.payments_of_order == 1  # else earlier attempts are part of the answer
    record = _paid_record(pay, payment_id, now, card, issued) if alone else None
    return CheckoutResult(pay.order_id, payment_id, replayed=False, record=record)


def _paid_record(
    pay: Row, payment_id: int, now: dt.datetime, card: Any, issued: list[customers.TicketLine]
) -> customers.OrderRecord:
    """The order just paid, as customers.order_record would read it back: from the rows the
    confirmation locked (an order with earlier, failed payments is read back instead)."""
    order = customers.OrderLine(
        id=pay.order_id,
        event_id=pay.event_id,
        event_name=pay.name,
        status=Order.PAY.target,
        total_cents=pay.total_cents,
        currency=pay.currency,
        created_at=pay.created_at,
        paid_at=now,
        cancel_reason=None,
    )
    payment = customers.PaymentLine(
        id=payment_id,
        status=Payment.CAPTURE.target,
        amount_cents=pay.amount_cents,
        refunded_cents=pay.refunded_cents,
        card_brand=card.brand if card is not None else pay.card_brand,
        card_last4=card.last4 if card is not None else pay.card_last4,
        failure_reason=pay.failure_reason,
    )
    return customers.OrderRecord(order, [payment], issued)


def _sell(
    session: Session, payment_id: int, pay: Row, now: dt.datetime, capture: dict[str, Any]
) -> list[customers.TicketLine]:
    """Capture the payment and issue the order's tickets if its hold still owns every one of
    their spots, else _Lost; returns them as the API shows them."""
    conn = session.connection()
    hold = conn.execute(_LOCK_HOLD, {"hold_id": pay.hold_id}).first() if pay.hold_id else None
    tickets = conn.execute(_LOCK_TICKET_SPOTS, {"order_id": pay.order_id}).all()
    kept = (
        hold is not None
        and hold_is_live(hold.status, hold.expires_at, now)
        and Order.PAY.allows(pay.order_status)
        and sale_window(pay).is_open(now)
        and bool(tickets)
        and all(
            Ticket.ISSUE.allows(t.status)
            and EventSpot.SELL.allows(t.spot_status)
            and t.hold_id == pay.hold_id
            for t in tickets
        )
    )
    if not kept:
        raise _Lost
    issued = [
        customers.TicketLine(
            id=t.id,
            status=Ticket.ISSUE.target,
            section_name=t.section,
            spot_label=t.label,
            price_cents=t.price_cents,
            holder_name=t.holder_name,
            ticket_type=t.ticket_type,
            discount_cents=t.discount_cents,
            code=sign_ticket(
                pay.signing_key,
                TicketClaim(pay.event_id, t.id, printed_label(t.section, t.label, t.ticket_type)),
            ),
        )
        for t in sorted(tickets, key=lambda t: t.id)
    ]
    sale = {
        **capture,
        "ids": [t.spot_id for t in tickets],
        "b_hold_id": pay.hold_id,
        "b_order_id": pay.order_id,
        **webhooks.order_paid_params(
            partner_id=pay.partner_id,
            event_id=pay.event_id,
            amount_cents=pay.amount_cents,
            currency=pay.currency,
        ),
    }
    mail = customer_mails.order_paid_values(
        pay.order_id,
        email=pay.customer_email,
        confirmed_at=pay.email_confirmed_at,
        saved_locale=pay.customer_locale,
        user_id=pay.customer_user_id,
    )
    posting = ledger.sale_posting(
        session,
        ledger.Sale(
            payment_id=payment_id,
            order_id=pay.order_id,
            partner_id=pay.partner_id,
            partner_name=pay.partner_name,
            amount_cents=pay.amount_cents,
            fee_cents=pay.fee_cents,
            net_cents=pay.net_cents,
            currency=pay.currency,
            by_type=ledger.gross_by_type(tickets),
            discounts=ledger.discounts_of(tickets),
        ),
    )
    # captured, sold, issued, paid, converted: each exactly once per payment, hold and ticket
    *counts, hooked, mail_id = _write_sale(conn, {**sale, **mail, **posting}, issued)
    if tuple(counts) != (1, len(tickets), len(tickets), 1, 1):
        raise _Lost
    if hooked:  # the partner's endpoints that get order.paid hear of it after the commit
        webhooks.send_after_commit(session, hooked)
    outbox.queued(session, mail, mail_id)  # sent after the commit, unless held
    if pay.waiting_room_per_minute is not None:  # a purchase ends the buyer's turn
        waiting_room.end_turn(conn, pay.event_id, pay.customer_id, began_by=hold.created_at)
    return issued


def _write_sale(
    conn: Connection, sale: dict[str, Any], issued: list[customers.TicketLine]
) -> tuple[Any, ...]:
    """Capture the payment, sell the spots, issue the tickets, mark the order paid, convert
    the hold, write the order.paid deliveries and the confirmation mail, and post the sale in
    the ledger, in one statement; the row count of each of the first five steps, then the ids
    of the endpoints written to (None: none) and the mail's id (None: written before)."""
    with_card = "b_brand" in sale
    codes = {"b_ticket_ids": [t.id for t in issued], "b_codes": [t.code for t in issued]}
    return tuple(conn.execute(_SALE_AT_ONCE[with_card], {**sale, **codes}).one())


def _cancel_lost(
    session: Session, payment_id: int, reference: str, now: dt.datetime, card: dict[str, Any]
) -> None:
    session.expire_all()
    payment = session.get(Payment, payment_id, with_for_update=True)
    if Payment.CAPTURE.allows(payment.status):
        payment.capture(reference, now)
        for column, value in card.items():
            setattr(payment, column, value)
    if payment.status == PaymentStatus.CAPTURED:
        ledger.post_unsold_capture(session, payment)  # once: posting is idempotent by cause
    order = payment.order
    if Order.CANCEL.allows(order.status):
        order.cancel("hold_lost")
    hold = session.get(Hold, order.hold_id, with_for_update=True) if order.hold_id else None
    if hold is not None:
        give_back(session, hold, Hold.EXPIRE)
    session.commit()


def refund_lost(session: Session, gateway: PaymentGateway, payment_id: int) -> None:
    """Refund a charge whose order was cancelled; on failure the reconcile task tries again."""
    payment = session.get(Payment, payment_id)
    try:
        refunded = gateway.refund(
            payment.gateway_ref or "", payment.amount_cents, key=f"refund:payment:{payment.id}"
        )
    except Exception:  # noqa: BLE001 - the network to the processor, whatever failed
        log.exception("refund call failed", extra={"payment_id": payment_id})
        refunded = False
    if refunded:
        payment = session.get(Payment, payment_id, with_for_update=True)
        if Payment.REFUND.allows(payment.status):
            payment.mark_refunded(utcnow())
            ledger.post_unsold_refund(session, payment)
        session.commit()
    else:
        log.error("refund of a cancelled order failed", extra={"payment_id": payment_id})
