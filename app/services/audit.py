"""The staff audit log: who changed what, before and after (app/models/audit.py).

One session listener (``after_flush``) reads the attribute history of the audited rows a flush
wrote and inserts their entries on the same connection, in the same transaction: a change that
rolls back leaves no entry, and no change is committed without one. It sees every way in (the
dashboard, the REST API, services, tasks, the command line) because each goes through the ORM;
the one bulk Core write of an audited table (spots generated in a block) records its own entry
with ``record``.

What is audited is declared once, in ``AUDITED``: events (publish, unpublish, cancel are their
status changes), sections and their prices, spots, partners and their fees, refunds, payouts,
staff users with their roles, and partners' webhook endpoints. Customers' purchases are not
staff changes: orders, tickets, holds and payments are not audited, and the purchase path,
which writes them with Core statements, costs not one statement more (a flush without audited
rows writes nothing).

Volume: spots blocked or unblocked together are one entry per section and flush, their ids as
ranges ("101-200,305"); holds, sales and refunds moving spots are not staff changes of spots.

Secrets are never written: a column named like a password, secret, token, one-time password or
key is recorded as changed ("[redacted]"), never with its value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import click
from celery import current_task
from flask import current_app, g, has_request_context, request
from sqlalchemy import event, insert, inspect, select
from sqlalchemy.orm import InstanceState, Session
from sqlalchemy.orm.util import identity_key

from app.models import (
    Event,
    EventSection,
    EventSpot,
    Order,
    Partner,
    PartnerUser,
    Payment,
    PaymentRefund,
    Payout,
    PromoCode,
    SpotStatus,
    WebhookEndpoint,
)
from app.models.audit import SYSTEM_ACTOR, AuditEntry
from app.models.base import utcnow

REDACTED = "[redacted]"
_SECRET = re.compile(r"password|secret|token|otp|(^|_)key$", re.IGNORECASE)
# A user whose only role is this one is a customer: its sign-up and its own changes are not
# staff changes.
CUSTOMER_ROLE = "Customer"


@dataclass(frozen=True)
class Audited:
    """How one model is audited."""

    object_type: str
    #: (partner id, label) of a row, from its loaded values (``values``)
    describe: Callable[[Session, Any, Mapping[str, Any]], tuple[int | None, str | None]]
    #: columns never recorded (bookkeeping written by the system itself)
    ignored: frozenset[str] = frozenset()
    #: when given, an update is recorded only when one of these columns changed
    watched: frozenset[str] | None = None
    #: collections recorded as lists of names or ids (a user's roles)
    collections: tuple[str, ...] = ()
    #: a new status -> the action an update entering it is
    statuses: Mapping[str, str] = field(default_factory=dict)
    created: str = "create"
    deleted: str = "delete"


def _event_partner(session: Session, event_id: int | None) -> int | None:
    if event_id is None:
        return None
    loaded = session.identity_map.get(identity_key(Event, event_id))
    if loaded is not None and "partner_id" in loaded.__dict__:
        return loaded.partner_id
    return session.connection().scalar(select(Event.partner_id).where(Event.id == event_id))


def _refund_partner(
    session: Session, _row: Any, values: Mapping[str, Any]
) -> tuple[int | None, str | None]:
    found = (
        session.connection()
        .execute(
            select(Event.partner_id, Order.id)
            .join(Order, Order.event_id == Event.id)
            .join(Payment, Payment.order_id == Order.id)
            .where(Payment.id == values.get("payment_id"))
        )
        .first()
    )
    if found is None:
        return None, None
    return found[0], f"order {found[1]}"


AUDITED: dict[type, Audited] = {
    Event: Audited(
        "event",
        lambda _s, _r, v: (v.get("partner_id"), v.get("name")),
        ignored=frozenset({"created_at", "updated_at", "public_key", "armed_at"}),
        statuses={"published": "publish", "draft": "unpublish", "cancelled": "cancel"},
    ),
    EventSection: Audited(
        "section", lambda s, _r, v: (_event_partner(s, v.get("event_id")), v.get("name"))
    ),
    EventSpot: Audited(
        "spot",
        lambda s, _r, v: (_event_partner(s, v.get("event_id")), v.get("label")),
        ignored=frozenset({"hold_id", "held_until", "position"}),
    ),
    Partner: Audited(
        "partner",
        lambda _s, _r, v: (v.get("id"), v.get("name")),
        ignored=frozenset({"created_at"}),
        statuses={"approved": "approve", "suspended": "suspend"},
    ),
    Payout: Audited(
        "payout",
        lambda _s, _r, v: (v.get("partner_id"), f"Payout {v.get('id')}"),
        ignored=frozenset({"ledger_transaction_id"}),
        statuses={"approved": "approve", "paid": "pay"},
        deleted="cancel",
    ),
    PaymentRefund: Audited(
        "refund",
        _refund_partner,
        ignored=frozenset({"idempotency_key", "created_at", "ledger_transaction_id"}),
        watched=frozenset({"status", "amount_cents", "fee_share_cents"}),
        collections=("tickets",),
        statuses={"done": "refund_done"},
        created="refund",
        deleted="refund_dropped",
    ),
    PartnerUser: Audited(
        "user",
        lambda _s, _r, v: (v.get("partner_id"), v.get("username")),
        ignored=frozenset(
            {"last_login", "login_count", "fail_login_count", "created_on", "changed_on"}
            | {"created_by_fk", "changed_by_fk"}
            # Sign-in bookkeeping: sessions ended and the last TOTP step used.
            | {"session_epoch", "totp_last_step"}
        ),
        collections=("roles", "groups"),
    ),
    # Where a partner's data is sent: its address, kinds, on or off; a rotation (secrets are
    # recorded as changed, never with their values).
    WebhookEndpoint: Audited(
        "webhook_endpoint",
        lambda _s, _r, v: (v.get("partner_id"), v.get("url")),
        ignored=frozenset({"created_at"}),
    ),
    # A partner's discounts: who created, changed or switched off which code.
    PromoCode: Audited(
        "promo_code",
        lambda _s, _r, v: (v.get("partner_id"), v.get("code")),
        ignored=frozenset({"created_at"}),
    ),
}

# A spot's status moves staff make (the others are holds, sales and refunds).
_SPOT_ACTIONS = {
    (SpotStatus.AVAILABLE, SpotStatus.BLOCKED): "block_spots",
    (SpotStatus.BLOCKED, SpotStatus.AVAILABLE): "unblock_spots",
}


@dataclass
class _Pending:
    """The entries one flush writes, and who writes them (found once, when first asked)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    # (section id, event id, action) -> ids of spots blocked, unblocked or deleted together
    spots: dict[tuple[int, int, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    _actor: dict[str, Any] | None = None

    @property
    def who(self) -> dict[str, Any]:
        if self._actor is None:
            self._actor = _who()
        return self._actor


@event.listens_for(Session, "after_flush")
def _write_entries(session: Session, _context: Any) -> None:
    """The audited rows this flush wrote, as entries in its transaction. The attribute history
    still holds what each row was before the flush."""
    pending = _Pending()
    touched = ((session.new, "created"), (session.dirty, None), (session.deleted, "deleted"))
    for rows, kind in touched:
        for row in rows:
            spec = AUDITED.get(type(row))
            if spec is not None:
                _note(session, pending, spec, row, kind)
    for (section_id, event_id, action), ids in pending.spots.items():
        pending.rows.append(
            _row(
                pending.who,
                "section",
                section_id,
                f"{len(ids)} spot(s)",
                action,
                {"spot_ids": [None, id_ranges(ids)], "spots": [None, len(ids)]},
                _event_partner(session, event_id),
            )
        )
    if pending.rows:
        _insert(session, pending.rows)


def _note(session: Session, pending: _Pending, spec: Audited, row: Any, kind: str | None) -> None:
    state = inspect(row)
    changes = _changes(state, spec, kind)
    if kind is None and spec.watched is not None and not (set(changes) & spec.watched):
        return
    if not changes:
        return
    action = {"created": spec.created, "deleted": spec.deleted}.get(kind or "", "update")
    if kind is None and "status" in changes:
        action = spec.statuses.get(changes["status"][1], action)
    values = state.dict
    if isinstance(row, EventSpot):
        together = (values.get("section_id"), values.get("event_id"))
        if kind == "deleted":
            pending.spots[(*together, "delete_spots")].append(values["id"])
            return
        if kind is None and "status" in changes:
            moved = _SPOT_ACTIONS.get(tuple(changes.pop("status")))  # type: ignore[arg-type]
            if moved is not None:
                pending.spots[(*together, moved)].append(values["id"])
            if not changes:
                return  # only a hold, a sale or a refund moved it
    if isinstance(row, PartnerUser) and not _staff_change(state, pending.who):
        return
    partner_id, label = spec.describe(session, row, values)
    pending.rows.append(
        _row(pending.who, spec.object_type, values.get("id"), label, action, changes, partner_id)
    )


def _changes(state: InstanceState, spec: Audited, kind: str | None) -> dict[str, list[Any]]:
    """{column: [before, after]} of what the flush wrote; nothing is loaded to find it."""
    changes: dict[str, list[Any]] = {}
    values = state.dict
    for attr in state.mapper.column_attrs:
        key = attr.key
        if key == "id" or key in spec.ignored:
            continue
        if kind == "created":
            before, after = None, values.get(key)
            if after is None:
                continue
        elif kind == "deleted":
            before, after = values.get(key), None
            if before is None:
                continue
        else:
            history = state.attrs[key].history
            if not history.has_changes():
                continue
            before = history.deleted[0] if history.deleted else None
            after = history.added[0] if history.added else None
        if _SECRET.search(key):
            before, after = (None if v is None else REDACTED for v in (before, after))
        scale = getattr(attr.columns[0].type, "scale", None)
        changes[key] = [plain(before, scale), plain(after, scale)]
    for name in spec.collections:
        if name not in values:
            continue  # never loaded: not changed either
        history = state.attrs[name].history
        if kind is None and not history.has_changes():
            continue
        before = [] if kind == "created" else [*history.unchanged, *history.deleted]
        after = [] if kind == "deleted" else [*history.unchanged, *history.added]
        changes[name] = [_names(before), _names(after)]
    return changes


def _names(rows: Iterable[Any]) -> list[Any]:
    return sorted(getattr(row, "name", None) or row.id for row in rows)


def _staff_change(state: InstanceState, who: Mapping[str, Any]) -> bool:
    """A user's change is a staff change when the user is staff (any role but Customer) or an
    admin makes it: customers' sign-ups and their own edits are not."""
    history = state.attrs["roles"].history
    roles = {role.name for role in (*history.unchanged, *history.deleted, *history.added)}
    if not history.has_changes() and "roles" not in state.dict:
        roles = {role.name for role in state.obj().roles}
    return bool(roles - {CUSTOMER_ROLE}) or "Admin" in who["actor_roles"].split(",")


def plain(value: Any, scale: int | None = None) -> Any:
    """A column's value as JSON keeps it: money stays integer cents or Decimal text (to the
    column's scale: "12.50", as stored), times are ISO 8601 (UTC, as stored), an array a list
    (a webhook endpoint's kinds)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, list | tuple):
        return [plain(item, scale) for item in value]
    if isinstance(value, Decimal):
        if scale is not None and value.is_finite():
            value = value.quantize(Decimal(1).scaleb(-scale))
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def id_ranges(ids: Iterable[int]) -> str:
    """[1, 2, 3, 7] -> "1-3,7": thousands of spots blocked at once in a few characters."""
    ranges: list[list[int]] = []
    for ident in sorted(set(ids)):
        if ranges and ident == ranges[-1][1] + 1:
            ranges[-1][1] = ident
        else:
            ranges.append([ident, ident])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def record(
    session: Session,
    *,
    object_type: str,
    object_id: int | None,
    label: str | None,
    action: str,
    changes: dict[str, list[Any]],
    partner_id: int | None,
) -> None:
    """An entry for a change the ORM did not see (a Core statement), in the session's
    transaction."""
    _insert(session, [_row(_who(), object_type, object_id, label, action, changes, partner_id)])


def record_generated_spots(session: Session, section: EventSection, labels: list[str]) -> None:
    """Spots generated in a block (one Core insert): one entry on their section."""
    if not labels:
        return
    record(
        session,
        object_type="section",
        object_id=section.id,
        label=section.name,
        action="generate_spots",
        changes={"spots": [None, len(labels)], "labels": [None, f"{labels[0]} .. {labels[-1]}"]},
        partner_id=_event_partner(session, section.event_id),
    )


def _row(
    who: Mapping[str, Any],
    object_type: str,
    object_id: int | None,
    label: str | None,
    action: str,
    changes: dict[str, list[Any]],
    partner_id: int | None,
) -> dict[str, Any]:
    return {
        **who,
        "object_type": object_type,
        "object_id": object_id,
        "object_label": (label or "")[:200] or None,
        "action": action,
        "changes": changes,
        "partner_id": partner_id,
    }


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    now = utcnow()
    session.connection().execute(insert(AuditEntry), [{"at": now, **row} for row in rows])


def _who() -> dict[str, Any]:
    """Who is making the change, and from where: a Celery task (run by a worker or in-process)
    is the system; a request is its user; the command line and services called by other
    code are the system."""
    who: dict[str, Any] = {
        "actor_id": None,
        "actor_name": SYSTEM_ACTOR,
        "actor_roles": SYSTEM_ACTOR,
        "source": SYSTEM_ACTOR,
        "request_id": None,
        "ip": None,
    }
    task = current_task
    if task:
        who["source"] = f"task:{task.name}"[:200]
        return who
    if has_request_context():
        user = _request_user()
        who["source"] = f"{request.method} {request.path}"[:200]
        who["request_id"] = g.get("request_id")
        who["ip"] = (request.remote_addr or "")[:64] or None
        if user is None:
            who["actor_name"] = who["actor_roles"] = "anonymous"
        else:
            who["actor_id"] = user.id
            who["actor_name"] = (user.username or "")[:200]
            who["actor_roles"] = ",".join(sorted(r.name for r in user.roles))[:200]
        return who
    context = click.get_current_context(silent=True)
    if context is not None:
        who["source"] = f"cli:{context.command_path}"[:200]
    return who


def _request_user() -> Any:
    """The request's signed-in user (dashboard session or API token), or None."""
    try:
        user = current_app.appbuilder.sm.current_user
    except (AttributeError, RuntimeError):  # no user loaded in this context
        return None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user
