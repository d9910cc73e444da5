"""Checkout: pay for a hold by card, at most once per attempt (ARCHITECTURE.md, "The purchase
path", steps 2 and 3).

1. Record the attempt (order with pending tickets at the prices the hold quoted, pending payment
   under the client's idempotency key, unique in the database) and extend the hold to cover the
   payment. A client that sends the total it showed (``expected_total_cents``) is refused
   (PriceChanged, 409) rather than charged when that is not what the hold costs.
2. Charge the card through the gateway, outside any row lock.
3. Confirm in one transaction (confirm.py): if the hold still owns its spots, issue the tickets
   and mark the order paid; if the hold was lost meanwhile, cancel the order and refund the
   charge.

A retry under the same key replays the first attempt: it answers that attempt's outcome, waits
for it while it is in flight, or finishes it when it was left unfinished (a crash, a timeout),
charging at most once because the gateway answers a repeated key with the first outcome.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from flask_babel import gettext
from sqlalchemy import (
    DateTime,
    Integer,
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

from app import metrics
from app.models import (
    Conflict,
    Customer,
    DomainError,
    Event,
    EventSpot,
    Hold,
    HoldStatus,
    InvalidRequest,
    NotFound,
    Order,
    OrderStatus,
    Partner,
    Payment,
    PaymentStatus,
    SpotStatus,
    Ticket,
    TicketStatus,
    WaitlistEntry,
)
from app.models.base import MAX_INT, utcnow
from app.models.event import SALE_COLUMNS, sale_window
from app.models.money import format_money
from app.models.order import hold_is_live
from app.models.partner import platform_fee_cents
from app.services import tickets
from app.services.locking import busy_on_lock_failure
from app.services.payments import PaymentGateway
from app.services.pg_writes import counted, row_count, rows_of_arrays
from app.services.purchase.confirm import CheckoutResult, confirm, raise_for_failure
from app.services.purchase.hold import hold_duration

log = logging.getLogger(__name__)

# A hold entering payment is extended so a slow card does not lose it mid-charge.
PAYMENT_GRACE = dt.timedelta(minutes=2)
# How long a retry waits for the first attempt under the same key before finishing it itself.
IN_FLIGHT_WAIT_SECONDS = 6.0


class HoldExpired(Conflict):
    code = "hold_expired"


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"


class CheckoutInProgress(Conflict):
    code = "checkout_in_progress"


class PriceChanged(Conflict):
    code = "price_changed"


def fingerprint(
    hold_id: int,
    card_token: str,
    expected_total_cents: int | None = None,
    holder_names: Any = None,
) -> str:
    request = f"{hold_id}|{card_token}"
    if expected_total_cents is not None:  # without it, the fingerprint attempts always had
        request += f"|{expected_total_cents}"
    if holder_names:  # likewise: the names are part of what a retry must ask again
        request += "|" + json.dumps(holder_names, ensure_ascii=False)
    return hashlib.sha256(request.encode()).hexdigest()


@metrics.timed_checkout()
def checkout(
    session: Session,
    gateway: PaymentGateway,
    customer_id: int,
    hold_id: int,
    card_token: str,
    idempotency_key: str,
    expected_total_cents: Any = None,
    holder_names: Any = None,
) -> CheckoutResult:
    """Pay for ``hold_id`` the prices its hold quoted; a retry with the same key and body
    returns the same order. ``expected_total_cents``: the total the client showed, if it sent
    one (expected_total); PriceChanged (nothing charged, the hold kept) when the hold costs
    anything else. ``holder_names``: each ticket's holder, in the order of the hold's spots
    (required when the event's tickets are named; by default the buyer's name)."""
    key = (idempotency_key or "").strip()
    if not 8 <= len(key) <= 100:
        raise DomainError(
            gettext("Send an Idempotency-Key of 8 to 100 characters."), field="Idempotency-Key"
        )
    if not card_token:
        raise DomainError(gettext("Give the card token."), field="card_token")
    expected_total_cents = expected_total(expected_total_cents)
    if holder_names is not None and (
        not isinstance(holder_names, list) or not all(isinstance(n, str) for n in holder_names)
    ):
        raise InvalidRequest(
            gettext("holder_names is a list of names, one per ticket."), field="holder_names"
        )
    wanted = fingerprint(hold_id, card_token, expected_total_cents, holder_names)
    session.flush()  # Core statements below: nothing of the caller's may wait in the session
    try:
        attempt = _record_attempt(
            session,
            gateway,
            customer_id,
            hold_id,
            card_token,
            key,
            wanted,
            expected_total_cents,
            holder_names,
        )
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


def expected_total(value: Any, *, form: bool = False) -> int | None:
    """The total a client says it showed: None when it sent none, else a whole number of cents
    (an integer; a form's field, ``form``, as its digits); DomainError naming the field
    otherwise."""
    if value is None or (form and value == ""):
        return None
    if form and isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 12:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise DomainError(
            gettext(
                "expected_total_cents must be a whole number of cents from 0 to %(max_int)s.",
                max_int=MAX_INT,
            ),
            field="expected_total_cents",
        )
    return value


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
            gettext(
                "The payment processor did not answer; this payment will be finished "
                "shortly. Try again in a minute."
            ),
        ) from exc
    return confirm(session, gateway, payment_id, result)


def _payment_for_key(session: Session, key: str) -> Payment | None:
    """The payment recorded under this idempotency key (one indexed read; loaded only if any)."""
    found = session.connection().execute(_PAYMENT_FOR_KEY, {"key": key}).scalar()
    return session.get(Payment, found) if found is not None else None


def _replay(
    session: Session, gateway: PaymentGateway, payment: Payment, customer_id: int, wanted: str
) -> CheckoutResult:
    if payment.order.customer_id != customer_id or payment.request_fingerprint != wanted:
        raise IdempotencyKeyReused(
            gettext("This Idempotency-Key was used for a different request."),
            field="Idempotency-Key",
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
    raise_for_failure(payment)
    return CheckoutResult(payment.order_id, payment.id, replayed=True)


_payment, _order, _ticket = Payment.__table__, Order.__table__, Ticket.__table__
_hold, _spot = Hold.__table__, EventSpot.__table__
_event, _partner, _customer = Event.__table__, Partner.__table__, Customer.__table__
_offer = WaitlistEntry.__table__

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
        _event.c.named_tickets,
        # A waiting list's offer lasts the offer's window, not HOLD_MINUTES.
        select(_offer.c.offer_expires_at)
        .where(_offer.c.hold_id == _hold.c.id)
        .scalar_subquery()
        .label("offered_until"),
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
# The hold's spots with the prices it quoted, locked, and the hold's order if it has one (an
# earlier, declined attempt's). Read after the hold's lock, in a statement of its own: a
# statement that waited for a row lock sees only that row anew (READ COMMITTED), not an order
# another attempt committed meanwhile; and no order of this hold can appear while its lock is
# ours.
_LOCK_HELD_SPOTS = (
    select(
        _spot.c.id,
        _spot.c.section_id,
        _spot.c.held_price_cents.label("price_cents"),
        _spot.c.held_ticket_type_id.label("ticket_type_id"),
        _spot.c.held_promo_code_id.label("promo_code_id"),
        func.coalesce(_spot.c.held_discount_cents, 0).label("discount_cents"),
        _order.c.id.label("order_id"),
        _order.c.status.label("order_status"),
        _order.c.total_cents.label("order_total"),
    )
    .select_from(_spot.outerjoin(_order, _order.c.hold_id == bindparam("hold_id")))
    .where(_spot.c.hold_id == bindparam("hold_id"), _spot.c.status == SpotStatus.HELD.value)
    .order_by(_spot.c.id)
    .with_for_update(of=_spot)
)
_INSERT_PAYMENT = insert(_payment).returning(_payment.c.id)
_PENDING_PAYMENT_OF_ORDER = select(_payment.c.id).where(
    _payment.c.order_id == bindparam("order_id"), _payment.c.status == PaymentStatus.PENDING.value
)
_TICKETS_OF_ORDER = select(func.count()).where(_ticket.c.order_id == bindparam("order_id"))
_NAMED = rows_of_arrays(spot_id=("b_spot_ids", Integer), holder_name=("b_names", String))
_RENAME_PENDING = (
    update(_ticket)
    .where(
        _ticket.c.order_id == bindparam("order_id"),
        _ticket.c.status == TicketStatus.PENDING.value,
        _ticket.c.spot_id == _NAMED.c.spot_id,
    )
    .values(holder_name=_NAMED.c.holder_name)
)
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
    ticket_type_id=("b_type_ids", Integer),
    promo_code_id=("b_promo_code_ids", Integer),
    discount_cents=("b_discounts", Integer),
    holder_name=("b_holders", String),
)
_NEW_TICKETS = (
    insert(_ticket)
    .from_select(
        ["order_id", "event_id", "section_id", "spot_id", "price_cents", "ticket_type_id",
         "promo_code_id", "discount_cents", "currency", "status", "holder_name", "issued_at"],
        select(
            _NEW_ORDER.c.id, _typed("b_event_id", Integer), _HELD.c.section_id, _HELD.c.spot_id,
            _HELD.c.price_cents, _HELD.c.ticket_type_id, _HELD.c.promo_code_id,
            _HELD.c.discount_cents, _typed("b_currency", String),
            literal(TicketStatus.PENDING.value, String), _HELD.c.holder_name,
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
    expected_total_cents: int | None,
    holder_names: list[str] | None = None,
) -> _Attempt:
    """Step 1: the order (on the first attempt), its pending tickets and the pending payment,
    under the hold's lock; the hold is extended to cover the charge. The total is what the hold
    quoted (an earlier attempt's order has the same)."""
    now = utcnow()
    conn = session.connection()
    ids = {"hold_id": hold_id, "customer_id": customer_id, "now": now}
    with busy_on_lock_failure(session):
        hold = conn.execute(_LOCK_HOLD_TO_PAY, ids).first()
        if hold is None:
            raise NotFound(gettext("Hold not found."))
        spots = conn.execute(_LOCK_HELD_SPOTS, ids).all()
        if hold.hold_status == HoldStatus.CONVERTED:
            order = conn.execute(_ORDER_OF_HOLD, ids).first()
            raise Conflict(
                gettext("This hold is already paid for."), order_id=order.id if order else None
            )
        if not hold_is_live(hold.hold_status, hold.expires_at, now) or not spots:
            raise HoldExpired(gettext("Your hold has expired: choose your seats again."))
        sale_window(hold).require_open(now)
        order = spots[0]  # its order_* columns
        # Cover the payment, but never beyond one grace period past the hold's own length:
        # repeated attempts must not keep seats forever. A waiting list's offer: its own window.
        own_end = hold.created_at + hold_duration()
        if hold.offered_until is not None:
            own_end = max(own_end, hold.offered_until)
        longest = own_end + PAYMENT_GRACE
        until = max(hold.expires_at, min(now + PAYMENT_GRACE, longest))
        order_id = order.order_id
        total = sum(s.price_cents for s in spots) if order_id is None else order.order_total
        if expected_total_cents is not None and expected_total_cents != total:
            raise _price_changed(total, expected_total_cents, hold.currency)
        names = tickets.holder_names(
            holder_names, len(spots), required=hold.named_tickets, default=hold.customer_name
        )
        if order_id is None:
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
                    "b_type_ids": [spot.ticket_type_id for spot in spots],
                    "b_promo_code_ids": [spot.promo_code_id for spot in spots],
                    "b_discounts": [spot.discount_cents for spot in spots],
                    "b_holders": names or [hold.customer_name] * len(spots),
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
            raise Conflict(
                gettext(
                    "Order %(order_id)s is %(order_status)s.",
                    order_id=order_id,
                    order_status=order.order_status,
                )
            )
        if conn.execute(_PENDING_PAYMENT_OF_ORDER, {"order_id": order_id}).first():
            raise CheckoutInProgress(gettext("A payment for these seats is being processed."))
        ticket_count = conn.execute(_TICKETS_OF_ORDER, {"order_id": order_id}).scalar_one()
        fee = platform_fee_cents(hold.fee_percent, hold.fee_fixed_cents, total, ticket_count)
        if names:  # this attempt names the holders anew
            conn.execute(
                _RENAME_PENDING,
                {"order_id": order_id, "b_spot_ids": [s.id for s in spots], "b_names": names},
            )
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


def _price_changed(held: int, expected: int, currency: str) -> PriceChanged:
    return PriceChanged(
        gettext(
            "These seats cost %(held)s, not the %(shown)s shown: nothing was "
            "charged. Check the total and pay again.",
            held=format_money(held, currency),
            shown=format_money(expected, currency),
        ),
        field="expected_total_cents",
        held_total_cents=held,
        expected_total_cents=expected,
    )
