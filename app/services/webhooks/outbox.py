"""Writing webhook deliveries: one ``webhook_delivery`` row per endpoint that should hear of a
cause, in the caller's transaction.

A delivery exists exactly when the change that causes it commits: a rollback drops both, and a
crash after the commit leaves the row for the sender's sweep. Only the active endpoints of the
partner who owns the event (or the payout) and subscribed to the kind get one: the rows are
written by one ``INSERT ... SELECT`` from ``webhook_endpoint``, so a partner without such an
endpoint costs that one statement, which writes nothing (and the sale, not even that: its step
is part of the sale's own statement, ``order_paid_step``). ``key`` names the kind and the
cause, unique per endpoint: a cause written twice is delivered once.

A ticket's first admission (``ticket.checked_in``) is written by a trigger on ``checkin_entry``
(migration 223d938e86e9): every way an entry reaches the database inserts that row.

After the commit a task delivers what each endpoint has due (``webhooks.send``), in order; run
in-process (the demo, no broker) that would be inside the request, so the beat's sweep sends
them instead (``webhooks.send_due``, every 10 seconds).

Payloads carry ids, amounts and times (ISO 8601, UTC, with a ``Z``), never the customer's
personal data: the receiver is the partner's own system, which looks up what it needs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    any_,
    bindparam,
    cast,
    exists,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from app.extensions import celery
from app.models import (
    DeliveryStatus,
    Order,
    PaymentRefund,
    Payout,
    Ticket,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookKind,
)
from app.models.base import literal_is, utcnow
from app.services.after_commit import enqueue

SEND_TASK = "webhooks.send"
SEND_DUE_TASK = "webhooks.send_due"
#: PostgreSQL's to_char pattern of the payloads' times (the check-in trigger's too).
ISO_UTC = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'

_delivery = WebhookDelivery.__table__
_endpoint = WebhookEndpoint.__table__
_older = _delivery.alias("older")


def _waits(now: Any) -> Any:
    """Of a delivery just written: whether an older one of its endpoint waits for its retry
    (pending, due later than ``now``). Then no task is sent for it: it could send nothing
    before that one, and the sweep that sends that one goes on with the next ones in order. So
    the sales during an endpoint's outage add no task each that would only find its delivery
    waiting. (An older one pending and due now, or being sent, still gets the new one a task:
    its sender may have looked for the next one before this commit.)"""
    # The row just inserted, named as RETURNING sees it (an INSERT's target does not correlate:
    # its Column would add the table to the subquery's FROM).
    return (
        exists()
        .where(
            _older.c.endpoint_id == literal_column(f"{_delivery.name}.endpoint_id"),
            _older.c.id < literal_column(f"{_delivery.name}.id"),
            literal_is(_older.c.status, DeliveryStatus.PENDING),
            _older.c.next_attempt_at > now,
        )
        .label("waits")
    )


def iso(at: dt.datetime | None) -> str | None:
    """A naive UTC time as the payloads write it (as ISO_UTC does in SQL)."""
    return None if at is None else at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cause_key(kind: str, cause: str) -> str:
    """A delivery's key: its kind and its cause (``order.paid:order:12``)."""
    return f"{kind}:{cause}"


def _deliveries(kind: str, partner_id: Any, key: Any, payload: Any, now: Any) -> Any:
    """INSERT one delivery of ``kind`` per active endpoint of the partner subscribed to it
    (oldest endpoint first), RETURNING the endpoints' ids and whether the delivery waits behind
    an older pending one (``_WAITS``); a key written before is skipped."""
    return (
        pg_insert(_delivery)
        .from_select(
            [
                "endpoint_id",
                "partner_id",
                "kind",
                "key",
                "payload",
                "status",
                "attempts",
                "next_attempt_at",
                "created_at",
            ],
            select(
                _endpoint.c.id,
                _endpoint.c.partner_id,
                literal(kind, String),
                key,
                payload,
                literal(DeliveryStatus.PENDING.value, String),
                literal(0, Integer),
                now,
                now,
            )
            .where(
                _endpoint.c.partner_id == partner_id,
                _endpoint.c.active,  # bare, as the partial index's predicate
                literal(kind, String) == any_(_endpoint.c.kinds),
            )
            .order_by(_endpoint.c.id),
        )  # fmt: skip
        .on_conflict_do_nothing(constraint="uq_webhook_delivery_endpoint_key")
        .returning(_delivery.c.endpoint_id, _waits(now))
    )


# Built once per kind (a statement built per call costs the compiler's time on every cause).
_QUEUE = {
    kind: _deliveries(
        kind.value,
        bindparam("partner_id", type_=Integer),
        bindparam("key", type_=String),
        bindparam("payload", type_=JSONB),
        bindparam("now"),
    )
    for kind in WebhookKind
}


def queue(
    session: Session, kind: WebhookKind, partner_id: int, *, cause: str, data: Mapping[str, Any]
) -> list[int]:
    """Write the deliveries of one cause of ``kind`` to the partner's endpoints; the ids of the
    endpoints written to (none: nobody listens, or the cause was written before). On the
    session's connection, without flushing: ``data`` is all a delivery needs."""
    written = session.connection().execute(
        _QUEUE[kind],
        {
            "partner_id": partner_id,
            "key": cause_key(kind.value, cause),
            "payload": dict(data),
            "now": utcnow(),
        },
    )
    rows = written.all()
    send_after_commit(session, [row.endpoint_id for row in rows if not row.waits])
    return [row.endpoint_id for row in rows]


def send_after_commit(session: Session, endpoint_ids: Iterable[int]) -> None:
    """Once the commit is done, a task per endpoint delivers what it has due, in order. Run
    in-process (no broker) it would run inside the request: the beat's sweep sends then."""
    if celery.conf.task_always_eager:
        return
    for endpoint_id in sorted(set(endpoint_ids)):
        enqueue(session, SEND_TASK, endpoint_id)


# --------------------------------------------------------------------------- order.paid


def order_paid_step() -> Any:
    """The sale's own ``order.paid`` deliveries, as a step the sale's one statement runs
    (purchase/confirm.py): no statement more per purchase. The payload is built by
    PostgreSQL, only for an endpoint that gets it, from the sale's parameters: ``b_order_id``,
    ``b_payment_id``, ``b_ticket_ids`` (in id order), ``now``, and ``w_partner_id``,
    ``w_event_id``, ``w_amount_cents``, ``w_currency``. Returns the endpoints' ids and ``waits``
    (the delivery waits behind an older one's retry: no task for it)."""
    order_id = cast(bindparam("b_order_id"), Integer)
    kind = WebhookKind.ORDER_PAID.value
    payload = func.jsonb_build_object(
        "order_id", order_id,
        "event_id", cast(bindparam("w_event_id"), Integer),
        "payment_id", cast(bindparam("b_payment_id"), Integer),
        "amount_cents", cast(bindparam("w_amount_cents"), Integer),
        "currency", cast(bindparam("w_currency"), String),
        "paid_at", func.to_char(bindparam("now"), ISO_UTC),
        "ticket_ids", bindparam("b_ticket_ids", type_=ARRAY(Integer)),
    )  # fmt: skip
    key = literal(cause_key(kind, "order:"), String) + cast(order_id, String)
    return _deliveries(
        kind, cast(bindparam("w_partner_id"), Integer), key, payload, bindparam("now")
    )


def order_paid_params(*, partner_id: int, event_id: int, amount_cents: int, currency: str) -> dict:
    """The parameters ``order_paid_step`` reads besides the sale's own."""
    return {
        "w_partner_id": partner_id,
        "w_event_id": event_id,
        "w_amount_cents": amount_cents,
        "w_currency": currency,
    }


# --------------------------------------------------------------------------- refunds


def queue_refund(session: Session, refund: PaymentRefund, order: Order, by: str) -> None:
    """A refund just booked: ``order.refunded`` (any refund, partial or whole), and when the
    order is void by its customer's cancellation or its event's, ``order.cancelled`` after it.
    ``by``: who asked (partner, admin, customer, event_cancelled, system)."""
    data = {
        "order_id": order.id,
        "event_id": order.event_id,
        "refund_id": refund.id,
        "payment_id": refund.payment_id,
        "amount_cents": refund.amount_cents,
        "currency": order.currency,
        "ticket_ids": [ticket.id for ticket in refund.tickets],
        "order_status": order.status,
        "refunded_at": iso(refund.refunded_at),
        "by": by,
    }
    partner_id = order.event.partner_id
    cause = f"refund:{refund.id}"
    queue(session, WebhookKind.ORDER_REFUNDED, partner_id, cause=cause, data=data)
    if by in ("customer", "event_cancelled"):
        reason = "customer" if by == "customer" else "event_cancelled"
        queue(
            session,
            WebhookKind.ORDER_CANCELLED,
            partner_id,
            cause=cause,
            data={**data, "reason": reason},
        )


# --------------------------------------------------------------------------- tickets


def queue_ticket_transferred(
    session: Session,
    ticket: Ticket,
    *,
    transfer: str,
    at: dt.datetime,
    previous_ticket_id: int | None = None,
) -> list[int]:
    """A ticket changed hands (issue 19, point 3, calls this in the transfer's transaction).
    ``transfer`` names the transfer (its row's id, say): each transfer is one delivery;
    ``previous_ticket_id``: the ticket it replaces when the transfer reissued it."""
    return queue(
        session,
        WebhookKind.TICKET_TRANSFERRED,
        ticket.event.partner_id,
        cause=f"transfer:{transfer}",
        data={
            "ticket_id": ticket.id,
            "previous_ticket_id": previous_ticket_id,
            "order_id": ticket.order_id,
            "event_id": ticket.event_id,
            "transferred_at": iso(at),
        },
    )


# --------------------------------------------------------------------------- payouts


def queue_payout_paid(session: Session, payout: Payout) -> list[int]:
    """A payout just marked paid, to its partner's endpoints."""
    return queue(
        session,
        WebhookKind.PAYOUT_PAID,
        payout.partner_id,
        cause=f"payout:{payout.id}",
        data={
            "payout_id": payout.id,
            "amount_cents": payout.amount_cents,
            "currency": payout.currency,
            "bank_reference": payout.bank_reference,
            "paid_at": iso(payout.paid_at),
        },
    )
