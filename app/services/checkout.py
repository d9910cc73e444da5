"""Checkout: pay for a hold by card, at most once per attempt (DESIGN.md, "Purchase path" 2-3).

1. Record the attempt (order with priced pending tickets, pending payment under the client's
   idempotency key, unique in the database) and extend the hold to cover the payment.
2. Charge the card through the gateway, outside any row lock.
3. Confirm in one transaction: if the hold still owns its spots, issue the tickets and mark the
   order paid; if the hold was lost meanwhile, cancel the order and refund the charge.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Integer,
    Row,
    String,
    bindparam,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import (
    Conflict,
    Customer,
    DomainError,
    Event,
    EventSection,
    EventSpot,
    Hold,
    HoldStatus,
    NotFound,
    Order,
    OrderStatus,
    Partner,
    Payment,
    PaymentStatus,
    SpotStatus,
    Ticket,
    TicketStatus,
)
from app.models.base import utcnow
from app.models.codes import TicketClaim, sign_ticket
from app.models.event import SALE_COLUMNS, sale_window
from app.models.order import hold_is_live, seat_label
from app.models.partner import platform_fee_cents
from app.services import customers, ledger, refunds, waiting_room
from app.services.holds import hold_duration, spots_of_hold
from app.services.locking import busy_on_lock_failure
from app.services.payments import ChargeResult, ChargeStatus, PaymentGateway
from app.services.pg_writes import counted, row_count, rows_of_arrays

log = logging.getLogger(__name__)

# A hold entering payment is extended so a slow card does not lose it mid-charge.
PAYMENT_GRACE = dt.timedelta(minutes=2)
# How long a retry waits for the first attempt under the same key before finishing it itself.
IN_FLIGHT_WAIT_SECONDS = 6.0
# A pending payment this old is finished by the reconcile task.
STALE_PAYMENT = dt.timedelta(minutes=2)


class CardDeclined(DomainError):
    status = 402
    code = "card_declined"


class HoldExpired(Conflict):
    code = "hold_expired"


class HoldLost(Conflict):
    code = "hold_lost"


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"


class CheckoutInProgress(Conflict):
    code = "checkout_in_progress"


@dataclass(frozen=True)
class CheckoutResult:
    order_id: int
    payment_id: int
    replayed: bool  # True when a retry returned the first attempt's result
    # The paid order as the API shows it, when the confirmation had all of it at hand (it
    # spares reading it back); None otherwise: read it with customers.order_record.
    record: customers.OrderRecord | None = None


def fingerprint(hold_id: int, card_token: str) -> str:
    return hashlib.sha256(f"{hold_id}|{card_token}".encode()).hexdigest()


def checkout(
    session: Session,
    gateway: PaymentGateway,
    customer_id: int,
    hold_id: int,
    card_token: str,
    idempotency_key: str,
) -> CheckoutResult:
    """Pay for ``hold_id``; a retry with the same key and body returns the same order."""
    key = (idempotency_key or "").strip()
    if not 8 <= len(key) <= 100:
        raise DomainError(
            "Send an Idempotency-Key of 8 to 100 characters.", field="Idempotency-Key"
        )
    if not card_token:
        raise DomainError("Give the card token.", field="card_token")
    wanted = fingerprint(hold_id, card_token)
    session.flush()  # Core statements below: nothing of the caller's may wait in the session
    try:
        attempt = _record_attempt(session, gateway, customer_id, hold_id, card_token, key, wanted)
    except (IntegrityError, DomainError):
        # A retry: its key is taken (an attempt raced us to the database, or came before and
        # was declined), or the first attempt left the hold paid, being paid or expired. The
        # key is looked up only now: a first attempt, the common case, spares the read.
        session.rollback()
        previous = _payment_for_key(session, key)
        if previous is None:
            raise
        return _replay(session, gateway, previous, customer_id, wanted)
    return _charge_and_confirm(session, gateway, attempt)


@dataclass(frozen=True)
class _Attempt:
    """What the gateway is asked to charge for a recorded payment."""

    payment_id: int
    token: str
    amount_cents: int
    currency: str
    key: str


def complete_payment(session: Session, gateway: PaymentGateway, payment_id: int) -> CheckoutResult:
    """Charge a recorded attempt and confirm it. The gateway answers a repeated charge under the
    same key with the first outcome, so an unfinished attempt (a crash, a timeout, a busy lock)
    is finished by calling this again: from a retry, or from the reconcile task."""
    payment = session.get(Payment, payment_id)
    attempt = _Attempt(
        payment.id,
        payment.gateway_token or "",
        payment.amount_cents,
        payment.currency,
        payment.idempotency_key,
    )
    return _charge_and_confirm(session, gateway, attempt)


def _charge_and_confirm(
    session: Session, gateway: PaymentGateway, attempt: _Attempt
) -> CheckoutResult:
    payment_id = attempt.payment_id
    session.commit()  # no transaction stays open while the processor is called
    try:
        result = gateway.charge(attempt.token, attempt.amount_cents, attempt.currency, attempt.key)
    except Exception as exc:  # noqa: BLE001 - the network to the processor, whatever failed
        session.rollback()
        log.exception("payment processor call failed", extra={"payment_id": payment_id})
        raise CheckoutInProgress(
            "The payment processor did not answer; this payment will be finished shortly. "
            "Try again in a minute.",
        ) from exc
    return _confirm(session, gateway, payment_id, result)


def _payment_for_key(session: Session, key: str) -> Payment | None:
    """The payment recorded under this idempotency key (one indexed read; loaded only if any)."""
    found = session.connection().execute(_PAYMENT_FOR_KEY, {"key": key}).scalar()
    return session.get(Payment, found) if found is not None else None


def _replay(
    session: Session, gateway: PaymentGateway, payment: Payment, customer_id: int, wanted: str
) -> CheckoutResult:
    if payment.order.customer_id != customer_id or payment.request_fingerprint != wanted:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request.", field="Idempotency-Key"
        )
    deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
    while payment.status == PaymentStatus.PENDING and time.monotonic() < deadline:
        time.sleep(0.1)
        session.expire_all()
        payment = session.get(Payment, payment.id)
    session.expire_all()
    payment = session.get(Payment, payment.id)
    if payment.status == PaymentStatus.PENDING:
        # The first attempt did not finish (or is slow): finish it, charging at most once.
        return replace(complete_payment(session, gateway, payment.id), replayed=True)
    _raise_for_failure(payment)
    return CheckoutResult(payment.order_id, payment.id, replayed=True)


def _raise_for_failure(payment: Payment) -> None:
    if payment.status in (PaymentStatus.DECLINED, PaymentStatus.FAILED):
        raise CardDeclined(
            _decline_message(payment.failure_reason),
            reason=payment.failure_reason or "card_declined",
        )
    if payment.order.status == OrderStatus.CANCELLED:
        refunded = payment.status == PaymentStatus.REFUNDED
        raise HoldLost(
            "Your seats were released before the payment completed; "
            + ("the charge was refunded." if refunded else "the charge is being refunded."),
            order_id=payment.order_id,
            refunded=refunded,
        )


DECLINE_MESSAGES = {
    "card_declined": "Your card was declined.",
    "insufficient_funds": "Your card was declined: insufficient funds.",
    "processing_error": "The card processor had an error; nothing was charged. Try again.",
    "invalid_token": "The card could not be read; enter it again.",
    "token_already_used": "This card entry was already used for a payment; enter the card again.",
    "token_expired": "This card entry expired; enter the card again.",
}


def _decline_message(reason: str | None) -> str:
    return DECLINE_MESSAGES.get(reason or "", "Your card was declined.")


_payment, _order, _ticket = Payment.__table__, Order.__table__, Ticket.__table__
_hold, _spot, _section = Hold.__table__, EventSpot.__table__, EventSection.__table__
_event, _partner, _customer = Event.__table__, Partner.__table__, Customer.__table__

# The purchase path runs as Core statements built once: the ORM's unit of work cost more CPU
# than the database did (bench/onsale.py).
_PAYMENT_FOR_KEY = select(_payment.c.id).where(_payment.c.idempotency_key == bindparam("key"))
_LOCK_HOLD_TO_PAY = (
    select(
        *SALE_COLUMNS,
        _hold.c.status.label("hold_status"),
        _hold.c.created_at,
        _hold.c.expires_at,
        _hold.c.event_id,
        _event.c.currency,
        _partner.c.fee_percent,
        _partner.c.fee_fixed_cents,
        _customer.c.name.label("customer_name"),
    )
    .select_from(
        _hold.join(_event, _event.c.id == _hold.c.event_id)
        .join(_partner, _partner.c.id == _event.c.partner_id)
        .join(_customer, _customer.c.id == _hold.c.customer_id)
    )
    .where(_hold.c.id == bindparam("hold_id"), _hold.c.customer_id == bindparam("customer_id"))
    .with_for_update(of=_hold)
)
_ORDER_OF_HOLD = select(_order.c.id).where(_order.c.hold_id == bindparam("hold_id"))
# The hold's spots with their prices, locked, and the hold's order if it has one (an earlier,
# declined attempt's). Read after the hold's lock, in a statement of its own: a statement that
# waited for a row lock sees only that row anew (READ COMMITTED), not an order another attempt
# committed meanwhile; and no order of this hold can appear while its lock is ours.
_LOCK_HELD_SPOTS = (
    select(
        _spot.c.id,
        _spot.c.section_id,
        _section.c.price_cents,
        _order.c.id.label("order_id"),
        _order.c.status.label("order_status"),
        _order.c.total_cents.label("order_total"),
    )
    .select_from(
        _spot.join(_section, _section.c.id == _spot.c.section_id).outerjoin(
            _order, _order.c.hold_id == bindparam("hold_id")
        )
    )
    .where(_spot.c.hold_id == bindparam("hold_id"), _spot.c.status == SpotStatus.HELD.value)
    .order_by(_spot.c.id)
    .with_for_update(of=_spot)
)
_INSERT_PAYMENT = insert(_payment).returning(_payment.c.id)
_PENDING_PAYMENT_OF_ORDER = select(_payment.c.id).where(
    _payment.c.order_id == bindparam("order_id"), _payment.c.status == PaymentStatus.PENDING.value
)
_TICKETS_OF_ORDER = select(func.count()).where(_ticket.c.order_id == bindparam("order_id"))
_EXTEND_HOLD = (
    update(_hold).where(_hold.c.id == bindparam("b_hold_id")).values(expires_at=bindparam("until"))
)
_EXTEND_SPOTS = (
    update(_spot)
    .where(_spot.c.hold_id == bindparam("b_hold_id"), _spot.c.status == SpotStatus.HELD.value)
    .values(held_until=bindparam("until"))
)


# A first attempt is recorded in one statement of data-modifying CTEs: the order,
# its tickets (the spots as arrays), the payment and the hold's extension; one round trip
# instead of five (bench/purchase_cost.py).
def _typed(name: str, type_: Any) -> Any:
    return bindparam(name, type_=type_)


_NEW_ORDER = (
    insert(_order)
    .values(
        customer_id=bindparam("b_customer_id"),
        event_id=bindparam("b_event_id"),
        hold_id=bindparam("b_hold_id"),
        currency=bindparam("b_currency"),
        status=OrderStatus.PENDING.value,
        total_cents=bindparam("b_total"),
        created_at=bindparam("now"),
    )
    .returning(_order.c.id)
    .cte("new_order")
)
_HELD = rows_of_arrays(
    spot_id=("b_spot_ids", Integer),
    section_id=("b_section_ids", Integer),
    price_cents=("b_prices", Integer),
)
_NEW_TICKETS = (
    insert(_ticket)
    .from_select(
        ["order_id", "event_id", "section_id", "spot_id", "price_cents", "currency", "status",
         "holder_name", "issued_at"],
        select(
            _NEW_ORDER.c.id, _typed("b_event_id", Integer), _HELD.c.section_id, _HELD.c.spot_id,
            _HELD.c.price_cents, _typed("b_currency", String),
            literal(TicketStatus.PENDING.value, String), _typed("b_holder", String),
            _typed("now", DateTime),
        ).select_from(_NEW_ORDER.join(_HELD, literal(True))),  # one row per spot
    )
    .returning(_ticket.c.id)
    .cte("new_tickets")
)  # fmt: skip
_NEW_PAYMENT = (
    insert(_payment)
    .from_select(
        ["order_id", "idempotency_key", "request_fingerprint", "amount_cents", "currency",
         "fee_cents", "net_cents", "gateway", "status", "gateway_token", "created_at"],
        select(
            _NEW_ORDER.c.id, _typed("b_key", String), _typed("b_fingerprint", String),
            _typed("b_total", Integer), _typed("b_currency", String), _typed("b_fee", Integer),
            _typed("b_net", Integer), _typed("b_gateway", String),
            literal(PaymentStatus.PENDING.value, String), _typed("b_token", String),
            _typed("now", DateTime),
        ),
    )
    .returning(_payment.c.id)
    .cte("new_payment")
)  # fmt: skip
_RECORD_AT_ONCE = select(
    _NEW_ORDER.c.id,
    _NEW_PAYMENT.c.id.label("payment_id"),
    row_count(_NEW_TICKETS),
    row_count(counted(_EXTEND_HOLD, "extended_hold")),
    row_count(counted(_EXTEND_SPOTS, "extended_spots")),
).select_from(_NEW_ORDER.join(_NEW_PAYMENT, literal(True)))


def _record_attempt(
    session: Session,
    gateway: PaymentGateway,
    customer_id: int,
    hold_id: int,
    card_token: str,
    key: str,
    wanted: str,
) -> _Attempt:
    """Step 1: the order (on the first attempt), its pending tickets and the pending payment,
    under the hold's lock; the hold is extended to cover the charge."""
    now = utcnow()
    conn = session.connection()
    ids = {"hold_id": hold_id, "customer_id": customer_id, "now": now}
    with busy_on_lock_failure(session):
        hold = conn.execute(_LOCK_HOLD_TO_PAY, ids).first()
        if hold is None:
            raise NotFound("Hold not found.")
        spots = conn.execute(_LOCK_HELD_SPOTS, ids).all()
        if hold.hold_status == HoldStatus.CONVERTED:
            order = conn.execute(_ORDER_OF_HOLD, ids).first()
            raise Conflict("This hold is already paid for.", order_id=order.id if order else None)
        if not hold_is_live(hold.hold_status, hold.expires_at, now) or not spots:
            raise HoldExpired("Your hold has expired: choose your seats again.")
        sale_window(hold).require_open(now)
        order = spots[0]  # its order_* columns
        # Cover the payment, but never beyond one grace period past the hold's own length:
        # repeated attempts must not keep seats forever.
        longest = hold.created_at + hold_duration() + PAYMENT_GRACE
        until = max(hold.expires_at, min(now + PAYMENT_GRACE, longest))
        order_id = order.order_id
        if order_id is None:
            total = sum(s.price_cents for s in spots)
            fee = platform_fee_cents(hold.fee_percent, hold.fee_fixed_cents, total, len(spots))
            recorded = conn.execute(
                _RECORD_AT_ONCE,
                {
                    "b_customer_id": customer_id,
                    "b_event_id": hold.event_id,
                    "b_hold_id": hold_id,
                    "b_currency": hold.currency,
                    "b_total": total,
                    "now": now,
                    "b_spot_ids": [spot.id for spot in spots],
                    "b_section_ids": [spot.section_id for spot in spots],
                    "b_prices": [spot.price_cents for spot in spots],
                    "b_holder": hold.customer_name,
                    "b_key": key,
                    "b_fingerprint": wanted,
                    "b_fee": fee,
                    "b_net": total - fee,
                    "b_gateway": gateway.name,
                    "b_token": card_token,
                    "until": until,
                },
            ).one()
            # order, payment, then each spot ticketed, the hold and each spot extended
            if tuple(recorded[2:]) != (len(spots), 1, len(spots)):
                raise RuntimeError(f"recording hold {hold_id}'s attempt wrote {recorded}")
            session.commit()
            return _Attempt(recorded.payment_id, card_token, total, hold.currency, key)
        # A retry after a declined attempt: the order and its tickets exist, a new payment.
        if order.order_status != OrderStatus.PENDING:
            raise Conflict(f"Order {order_id} is {order.order_status}.")
        if conn.execute(_PENDING_PAYMENT_OF_ORDER, {"order_id": order_id}).first():
            raise CheckoutInProgress("A payment for these seats is being processed.")
        total = order.order_total
        tickets = conn.execute(_TICKETS_OF_ORDER, {"order_id": order_id}).scalar_one()
        fee = platform_fee_cents(hold.fee_percent, hold.fee_fixed_cents, total, tickets)
        payment_id = conn.execute(
            _INSERT_PAYMENT,
            {
                "order_id": order_id,
                "idempotency_key": key,
                "request_fingerprint": wanted,
                "amount_cents": total,
                "currency": hold.currency,
                "fee_cents": fee,
                "net_cents": total - fee,
                "gateway": gateway.name,
                "status": PaymentStatus.PENDING.value,
                "gateway_token": card_token,
                "created_at": now,
            },
        ).scalar_one()
        # Only the parameters named: an UPDATE takes any column-named parameter as a new value.
        conn.execute(_EXTEND_HOLD, {"b_hold_id": hold_id, "until": until})
        conn.execute(_EXTEND_SPOTS, {"b_hold_id": hold_id, "until": until})
        session.commit()
    return _Attempt(payment_id, card_token, total, hold.currency, key)


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
    )
    .select_from(
        _payment.join(_order, _order.c.id == _payment.c.order_id)
        .join(_event, _event.c.id == _order.c.event_id)
        .join(_partner, _partner.c.id == _event.c.partner_id)
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
    )
    .select_from(
        _ticket.join(_spot, _spot.c.id == _ticket.c.spot_id).join(
            _section, _section.c.id == _ticket.c.section_id
        )
    )
    .where(_ticket.c.order_id == bindparam("order_id"))
    .order_by(_spot.c.id)
    .with_for_update(of=_spot)
)
# The writes of a sale name their parameters b_*: an UPDATE takes any parameter named as one of
# its table's columns as a new value (and, in a statement of several, any of them).
_SETTLE_PAYMENT = update(_payment).where(
    _payment.c.id == bindparam("b_payment_id"), _payment.c.status == PaymentStatus.PENDING.value
)
_CAPTURE = _SETTLE_PAYMENT.values(
    status=PaymentStatus.CAPTURED.value,
    gateway_ref=bindparam("b_reference"),
    captured_at=bindparam("now"),
)
_CAPTURE_WITH_CARD = _CAPTURE.values(
    card_brand=bindparam("b_brand"),
    card_last4=bindparam("b_last4"),
    card_exp_month=bindparam("b_exp_month"),
    card_exp_year=bindparam("b_exp_year"),
)
_MARK_ORDER_PAID = (
    update(_order)
    .where(_order.c.id == bindparam("b_order_id"), _order.c.status == OrderStatus.PENDING.value)
    .values(status=OrderStatus.PAID.value, paid_at=bindparam("now"))
)
_CONVERT_HOLD = (
    update(_hold)
    .where(_hold.c.id == bindparam("b_hold_id"), _hold.c.status == HoldStatus.ACTIVE.value)
    .values(status=HoldStatus.CONVERTED.value)
)
# Sold to the hold that holds them, and to no other.
_SELL_SPOTS = (
    update(_spot)
    .where(
        _spot.c.id.in_(bindparam("ids", expanding=True)),
        _spot.c.hold_id == bindparam("b_hold_id"),
        _spot.c.status == SpotStatus.HELD.value,
    )
    .values(status=SpotStatus.SOLD.value, hold_id=None, held_until=None)
)


# The writes of a sale go in one statement of data-modifying CTEs, built from the
# statements above (the tickets' codes as arrays), answering each one's row count: one round
# trip instead of five (bench/purchase_cost.py).
_CODES = rows_of_arrays(id=("b_ticket_ids", Integer), code=("b_codes", String))
_ISSUE_TICKETS = (
    update(_ticket)
    .where(_ticket.c.id == _CODES.c.id, _ticket.c.status == TicketStatus.PENDING.value)
    .values(status=TicketStatus.VALID.value, code=_CODES.c.code, issued_at=bindparam("now"))
)


def _at_once(capture: Any) -> Any:
    steps = {
        "captured": capture,
        "sold": _SELL_SPOTS,
        "issued": _ISSUE_TICKETS,
        "paid": _MARK_ORDER_PAID,
        "converted": _CONVERT_HOLD,
    }
    return select(*(row_count(counted(step, name)) for name, step in steps.items()))


_SALE_AT_ONCE = {False: _at_once(_CAPTURE), True: _at_once(_CAPTURE_WITH_CARD)}


class _Lost(Exception):
    """The hold no longer owns every spot of the order: nothing may be sold."""


def _confirm(
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
            _raise_for_failure(payment)
            return CheckoutResult(payment.order_id, payment_id, replayed=True)
        if status != ChargeStatus.APPROVED:
            failed = status == ChargeStatus.ERROR
            declined = (PaymentStatus.FAILED if failed else PaymentStatus.DECLINED).value
            reason = reason or "card_declined"
            conn.execute(
                _SETTLE_PAYMENT.values(status=declined, failure_reason=reason, **card_values), ids
            )
            session.commit()
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
        _refund_lost(session, gateway, payment_id)
        _raise_for_failure(session.get(Payment, payment_id))
        return CheckoutResult(pay.order_id, payment_id, replayed=False)  # read back: not ours
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
        status=OrderStatus.PAID.value,
        total_cents=pay.total_cents,
        currency=pay.currency,
        created_at=pay.created_at,
        paid_at=now,
        cancel_reason=None,
    )
    payment = customers.PaymentLine(
        id=payment_id,
        status=PaymentStatus.CAPTURED.value,
        amount_cents=pay.amount_cents,
        fee_cents=pay.fee_cents,
        net_cents=pay.net_cents,
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
        and pay.order_status == OrderStatus.PENDING
        and sale_window(pay).is_open(now)
        and bool(tickets)
        and all(
            t.status == TicketStatus.PENDING
            and t.spot_status == SpotStatus.HELD
            and t.hold_id == pay.hold_id
            for t in tickets
        )
    )
    if not kept:
        raise _Lost
    issued = [
        customers.TicketLine(
            id=t.id,
            status=TicketStatus.VALID.value,
            section_name=t.section,
            spot_label=t.label,
            price_cents=t.price_cents,
            holder_name=t.holder_name,
            code=sign_ticket(
                pay.signing_key, TicketClaim(pay.event_id, t.id, seat_label(t.section, t.label))
            ),
        )
        for t in sorted(tickets, key=lambda t: t.id)
    ]
    sale = {
        **capture,
        "ids": [t.spot_id for t in tickets],
        "b_hold_id": pay.hold_id,
        "b_order_id": pay.order_id,
    }
    # captured, sold, issued, paid, converted: each exactly once per payment, hold and ticket
    if _write_sale(conn, sale, issued) != (1, len(tickets), len(tickets), 1, 1):
        raise _Lost
    if pay.waiting_room_per_minute is not None:  # a purchase ends the buyer's turn
        waiting_room.end_turn(conn, pay.event_id, pay.customer_id, began_by=hold.created_at)
    ledger.post_sale(
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
        ),
    )
    return issued


def _write_sale(
    conn: Connection, sale: dict[str, Any], issued: list[customers.TicketLine]
) -> tuple[int, ...]:
    """Capture the payment, sell the spots, issue the tickets, mark the order paid and convert
    the hold, in one statement; the row count of each."""
    with_card = "b_brand" in sale
    codes = {"b_ticket_ids": [t.id for t in issued], "b_codes": [t.code for t in issued]}
    return tuple(conn.execute(_SALE_AT_ONCE[with_card], {**sale, **codes}).one())


def _cancel_lost(
    session: Session, payment_id: int, reference: str, now: dt.datetime, card: dict[str, Any]
) -> None:
    session.expire_all()
    payment = session.get(Payment, payment_id, with_for_update=True)
    if payment.status == PaymentStatus.PENDING:
        payment.capture(reference, now)
        for column, value in card.items():
            setattr(payment, column, value)
    if payment.status == PaymentStatus.CAPTURED:
        ledger.post_unsold_capture(session, payment)  # once: posting is idempotent by cause
    order = payment.order
    if order.status == OrderStatus.PENDING:
        order.cancel("hold_lost")
    hold = session.get(Hold, order.hold_id, with_for_update=True) if order.hold_id else None
    if hold is not None:
        for spot in spots_of_hold(session, hold.id, lock=True):
            spot.release()
        if hold.status == HoldStatus.ACTIVE:
            hold.status = HoldStatus.EXPIRED.value
    session.commit()


def _refund_lost(session: Session, gateway: PaymentGateway, payment_id: int) -> None:
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
        if payment.status == PaymentStatus.CAPTURED:
            payment.mark_refunded(utcnow())
            ledger.post_unsold_refund(session, payment)
        session.commit()
    else:
        log.error("refund of a cancelled order failed", extra={"payment_id": payment_id})


def reconcile_payments(
    session: Session, gateway: PaymentGateway, now: dt.datetime
) -> dict[str, int]:
    """Finish what crashed or timed out: pending payments older than STALE_PAYMENT are charged
    (at most once, by their key) and confirmed; captured charges of cancelled orders are
    refunded. Returns how many of each were handled."""
    stale = session.scalars(
        select(Payment.id).where(
            Payment.status == PaymentStatus.PENDING, Payment.created_at < now - STALE_PAYMENT
        )
    ).all()
    finished = 0
    for payment_id in stale:
        try:
            complete_payment(session, gateway, payment_id)
        except DomainError:
            session.rollback()
        except Exception:  # one payment that cannot be finished must not stop the others
            session.rollback()
            log.exception("payment %s could not be finished", payment_id)
            continue
        finished += 1
    unrefunded = session.scalars(
        select(Payment.id)
        .join(Order, Order.id == Payment.order_id)
        .where(Payment.status == PaymentStatus.CAPTURED, Order.status == OrderStatus.CANCELLED)
    ).all()
    for payment_id in unrefunded:
        _refund_lost(session, gateway, payment_id)
    pending = refunds.finish_pending_refunds(session, gateway, now)
    return {
        "finished": finished,
        "refunds_retried": len(unrefunded),
        "pending_refunds_finished": pending,
    }
