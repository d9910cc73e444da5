"""The money side of the cluster tests (tests/cluster/test_worker_dies.py): partners with paid
orders made through the app's services on the cluster's own PostgreSQL, sales moved into past
days so that settlement has days to reconcile, the workers' logs read for which worker holds a
task, and what a money run may have done twice, counted in the database."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from flask import Flask
from sqlalchemy import text

from ops.cluster import Cluster
from tests.support.cluster import PASSWORD

GATEWAY = "simulated"


@dataclass
class Sales:
    """A partner's event and its paid orders (one ticket each) with their payments."""

    partner_id: int
    event_id: int
    order_ids: list[int] = field(default_factory=list)
    payment_ids: list[int] = field(default_factory=list)


def sell(app: Flask, partner: str, orders: int, *, reserve_percent: int = 0) -> Sales:
    """A new approved partner whose event on sale has ``orders`` paid orders of one ticket each,
    held and paid with a card of the simulated acquirer as a buyer would (a customer buys at most
    MAX_SPOTS_PER_EVENT: several customers)."""
    from app import sim_acquirer
    from app.extensions import db
    from app.models import Event, EventSection, Partner
    from app.models.base import utcnow
    from app.services import customers, purchase
    from app.services.events import generate_spots
    from app.services.payments import gateway
    from app.services.scoping import SYSTEM

    with app.app_context():
        owner = Partner(name=f"{partner} {uuid.uuid4().hex[:6]}", status="approved",
                        fee_percent=10, fee_fixed_cents=100,
                        reserve_percent=Decimal(reserve_percent))  # fmt: skip
        starts = utcnow().replace(microsecond=0) + dt.timedelta(days=20)
        event = Event(partner=owner, name=f"{partner} live", venue="Arena", city="Sao Paulo",
                      starts_at=starts, currency="BRL")  # fmt: skip
        event.sections.append(EventSection(name="Pista", kind="general", price_cents=10000))
        db.session.add(event)
        db.session.commit()
        section_id = event.sections[0].id
        generate_spots(db.session, section_id, SYSTEM, quantity=orders)
        event.publish()
        db.session.commit()
        sales = Sales(partner_id=owner.id, event_id=event.id)
        per_customer = app.config["MAX_SPOTS_PER_EVENT"]
        buyer = 0
        for n in range(orders):
            if n % per_customer == 0:
                email = f"money{n}.{uuid.uuid4().hex[:8]}@cluster.example"
                buyer = customers.sign_up(
                    db.session, app.appbuilder.sm, f"Buyer {n}", email, PASSWORD
                ).id
            hold = purchase.hold.reserve_spots(
                db.session, buyer, event.id, section_id=section_id, quantity=1
            )
            token = sim_acquirer.tokenize({
                "number": "4242424242424242", "exp_month": 12, "exp_year": utcnow().year + 2,
                "cvc": "123", "holder_name": "Buyer"})["token"]  # fmt: skip
            paid = purchase.checkout.checkout(
                db.session, gateway(), buyer, hold.id, token, uuid.uuid4().hex
            )
            sales.order_ids.append(paid.order_id)
            sales.payment_ids.append(paid.payment_id)
        db.session.remove()
    return sales


def move_to_days_ago(app: Flask, payments_by_days: dict[int, list[int]]) -> None:
    """The payments (each key: how many days ago) were charged, captured and posted that many
    days earlier: at the acquirer (its report of the day lists them) and here."""
    from app.extensions import db

    shift = "- make_interval(days => :days)"
    statements = [
        f"""UPDATE sim_acquirer_charge SET created_at = created_at {shift}
            WHERE id = (SELECT gateway_ref FROM payment WHERE id = :payment)""",
        f"""UPDATE payment SET created_at = created_at {shift}, captured_at = captured_at {shift}
            WHERE id = :payment""",
        f"""UPDATE ledger_transaction SET created_at = created_at {shift}
            WHERE payment_id = :payment""",
    ]
    rows = [{"days": days, "payment": payment}
            for days, payments in payments_by_days.items() for payment in payments]  # fmt: skip
    with app.app_context():
        for statement in statements:
            db.session.execute(text(statement), rows)
        db.session.commit()
        db.session.remove()


def settle_days(app: Flask, days: list[dt.date]) -> None:
    """Reconcile these days now, in the test process (finance's "run now")."""
    from app.extensions import db
    from app.services import money_runs

    with app.app_context():
        for day in days:
            money_runs.settle(db.session, day)
        db.session.remove()


def available(app: Flask, partner_ids: list[int]) -> dict[int, int]:
    """What the next payout would pay each partner, in BRL cents."""
    from app.extensions import db
    from app.models.base import utcnow
    from app.services import payouts

    with app.app_context():
        found = {p: payouts.funds(db.session, p, "BRL", utcnow()).available for p in partner_ids}
        db.session.remove()
    return found


def send(app: Flask, task: str) -> str:
    """Send a task to the cluster's broker, as the beat does; its id."""
    from app.extensions import celery

    with app.app_context():
        return celery.tasks[task].delay().id


def cancel(app: Flask, event_id: int) -> None:
    """The platform cancels the event: the service sends the refund task once it commits."""
    from app.extensions import db
    from app.services.events import cancel_event
    from app.services.scoping import SYSTEM

    with app.app_context():
        cancel_event(db.session, event_id, SYSTEM, "The venue flooded")
        db.session.remove()


# The workers' logs -------------------------------------------------------------------------


def log_sizes(cluster: Cluster) -> dict[str, int]:
    """Where each worker's log ends now (what comes after is news)."""
    return {name: _log(cluster, name).stat().st_size for name in cluster.workers}


def task_lines(cluster: Cluster, since: dict[str, int], task: str, what: str) -> dict[str, str]:
    """Task ids of ``task`` the worker logged as ``what`` ("received", "succeeded") since
    ``since``, each with the worker that logged it (its last)."""
    found: dict[str, str] = {}
    for name in cluster.workers:
        with _log(cluster, name).open("rb") as log:
            log.seek(since.get(name, 0))
            for raw in log:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue  # the banner, a traceback's lines
                message = str(line.get("message", "")) if isinstance(line, dict) else ""
                if message.startswith(f"Task {task}[") and f"] {what}" in message:
                    found[message.split("[", 1)[1].split("]", 1)[0]] = name
    return found


def _log(cluster: Cluster, name: str):  # noqa: ANN202 - a Path
    return cluster.base / "log" / f"{name}.log"


# What was done, and what was done twice ---------------------------------------------------


def count(app: Flask, sql: str, **params: object) -> int:
    from app.extensions import db

    with app.app_context():
        found = db.session.execute(text(sql), params).scalar_one()
        db.session.remove()
    return int(found or 0)


def days_reconciled(app: Flask, days: list[dt.date]) -> int:
    return count(app, "SELECT count(*) FROM settlement_day WHERE gateway = :g AND day = ANY(:d)",
                 g=GATEWAY, d=days)  # fmt: skip


def payouts_made(app: Flask, partner_ids: list[int]) -> int:
    return count(app, "SELECT count(*) FROM payout WHERE partner_id = ANY(:p)", p=partner_ids)


def orders_refunded(app: Flask, event_id: int) -> int:
    return count(app, """SELECT count(*) FROM "order"
        WHERE event_id = :e AND status = 'refunded'""", e=event_id)  # fmt: skip


def refund_progress(app: Flask, event_id: int) -> dict[str, int]:
    """How far the refunds of a cancelled event are: orders refunded; refunds recorded and not
    finished (the processor being asked, or its answer being booked); refunds the acquirer made
    for orders not booked as refunded yet."""
    from app.extensions import db

    with app.app_context():
        found = db.session.execute(
            text("""SELECT
            (SELECT count(*) FROM "order" WHERE event_id = :e AND status = 'refunded'),
            (SELECT count(*) FROM payment_refund r JOIN payment p ON p.id = r.payment_id
             JOIN "order" o ON o.id = p.order_id WHERE o.event_id = :e AND r.status = 'pending'),
            (SELECT count(*) FROM sim_acquirer_refund r JOIN payment p
             ON p.gateway_ref = r.charge_id JOIN "order" o ON o.id = p.order_id
             WHERE o.event_id = :e AND o.status <> 'refunded')"""),
            {"e": event_id},
        ).one()
        db.session.remove()
    return dict(zip(("refunded", "pending", "acquirer_not_booked"), found, strict=True))


def settlement_losses(app: Flask, days: list[dt.date], payment_ids: list[int]) -> dict[str, int]:
    """The settlement of ``days`` and of the payments charged in them: each day reconciled,
    each charge settled by one line, each day's settlement (of any day) posted once and these
    days' moving exactly what was captured out of gateway clearing, nothing flagged."""
    queries = {
        "days_not_reconciled": """SELECT :n - count(DISTINCT day) FROM settlement_day
            WHERE gateway = :g AND day = ANY(:d)""",
        "charges_unsettled": """SELECT count(*) FROM payment p WHERE p.id = ANY(:p)
            AND NOT EXISTS (SELECT 1 FROM settlement_line l WHERE l.payment_id = p.id
            AND l.kind = 'charge')""",
        "charges_settled_twice": """SELECT count(*) FROM (SELECT l.payment_id FROM settlement_line
            l WHERE l.payment_id = ANY(:p) AND l.kind = 'charge' GROUP BY l.payment_id
            HAVING count(*) > 1) s""",
        # Any day's, not only those of ``days``: a run that replayed others.
        "days_posted_twice": """SELECT count(*) FROM (SELECT s.id FROM settlement s
            JOIN ledger_transaction t ON t.kind = 'settlement'
            AND t.cause_key LIKE 'settlement:' || s.gateway || ':' || s.day || ':' || s.currency
                || '%'
            WHERE s.gateway = :g GROUP BY s.id HAVING count(*) > 1) x""",
        # What left clearing for these days, against what was captured on them (0 when equal).
        "cents_cleared_wrong": """SELECT abs(
            (SELECT coalesce(sum(amount_cents), 0) FROM payment WHERE id = ANY(:p))
            + (SELECT coalesce(sum(e.amount_cents), 0) FROM ledger_entry e
               JOIN ledger_account a ON a.id = e.account_id AND a.code = 'gateway_clearing'
               JOIN ledger_transaction t ON t.id = e.transaction_id AND t.kind = 'settlement'
               JOIN settlement s ON t.cause_key LIKE 'settlement:' || s.gateway || ':' || s.day
                   || ':' || s.currency || '%'
               WHERE s.gateway = :g AND s.day = ANY(:d)))""",
        "mismatches": """SELECT count(*) FROM settlement_mismatch m JOIN settlement s
            ON s.id = m.settlement_id WHERE s.gateway = :g AND s.day = ANY(:d)""",
    }
    return _counts(app, queries, g=GATEWAY, d=days, n=len(days), p=payment_ids)


def payout_losses(app: Flask, owed: dict[int, int]) -> dict[str, int]:
    """The payout run for partners ``owed`` (partner id: what they were owed): one payout each of
    all it was owed, its items adding up to it and listing each transaction once; and no partner
    at all with more in payouts than its settled money less its reserve."""
    from app.extensions import db
    from app.models.base import utcnow
    from app.services import payouts

    partners = list(owed)
    queries = {
        "partners_unpaid": """SELECT count(*) FROM unnest(CAST(:p AS integer[])) AS q(id)
            WHERE NOT EXISTS (SELECT 1 FROM payout WHERE partner_id = q.id)""",
        "partners_paid_twice": """SELECT count(*) FROM (SELECT partner_id FROM payout
            WHERE partner_id = ANY(:p) GROUP BY partner_id, currency HAVING count(*) > 1) s""",
        "items_listed_twice": """SELECT count(*) - count(DISTINCT ledger_transaction_id)
            FROM payout_item""",
        "payouts_not_their_items": """SELECT count(*) FROM payout o WHERE o.partner_id = ANY(:p)
            AND o.amount_cents <> (SELECT coalesce(sum(i.amount_cents), 0) FROM payout_item i
            WHERE i.payout_id = o.id)""",
    }
    found = _counts(app, queries, p=partners)
    with app.app_context():
        paid = dict(db.session.execute(text(
            "SELECT partner_id, sum(amount_cents) FROM payout WHERE partner_id = ANY(:p) "
            "GROUP BY partner_id"), {"p": partners}).all())  # fmt: skip
        funds = payouts.partner_funds(db.session, utcnow())
        db.session.remove()
    found["payouts_not_what_was_owed"] = sum(
        1 for p, cents in owed.items() if p in paid and paid[p] != cents
    )
    found["partners_paid_beyond_funds"] = sum(1 for f in funds if f.in_payouts > f.payable)
    return found


def refund_losses(app: Flask, event_id: int) -> dict[str, int]:
    """The refunds of a cancelled event: every order refunded, every charge refunded once at the
    acquirer and in full, one refund posted per payment, none left half done."""
    queries = {
        "orders_not_refunded": """SELECT count(*) FROM "order" WHERE event_id = :e
            AND status <> 'refunded'""",
        "charges_refunded_twice": """SELECT count(*) FROM (SELECT c.id FROM sim_acquirer_charge c
            JOIN payment p ON p.gateway_ref = c.id JOIN "order" o ON o.id = p.order_id
            JOIN sim_acquirer_refund r ON r.charge_id = c.id WHERE o.event_id = :e
            GROUP BY c.id HAVING count(*) > 1 OR sum(r.amount_cents) > min(c.amount_cents)) s""",
        "charges_not_refunded_in_full": """SELECT count(*) FROM sim_acquirer_charge c
            JOIN payment p ON p.gateway_ref = c.id JOIN "order" o ON o.id = p.order_id
            WHERE o.event_id = :e AND c.refunded_cents <> c.amount_cents""",
        "refunds_posted_twice": """SELECT count(*) FROM (SELECT t.payment_id
            FROM ledger_transaction t JOIN payment p ON p.id = t.payment_id
            JOIN "order" o ON o.id = p.order_id WHERE o.event_id = :e AND t.kind = 'refund'
            GROUP BY t.payment_id HAVING count(*) > 1) s""",
        "refunds_pending": """SELECT count(*) FROM payment_refund r JOIN payment p
            ON p.id = r.payment_id JOIN "order" o ON o.id = p.order_id WHERE o.event_id = :e
            AND r.status <> 'done'""",
    }
    return _counts(app, queries, e=event_id)


def unbalanced_transactions(app: Flask) -> int:
    """Ledger transactions whose entries do not add up to zero (in some currency)."""
    return count(
        app,
        """SELECT count(*) FROM (SELECT transaction_id FROM ledger_entry
        GROUP BY transaction_id, currency HAVING sum(amount_cents) <> 0) s""",
    )


def _counts(app: Flask, queries: dict[str, str], **params: object) -> dict[str, int]:
    from app.extensions import db

    with app.app_context():
        found = {name: int(db.session.execute(text(sql), params).scalar_one())
                 for name, sql in queries.items()}  # fmt: skip
        db.session.remove()
    return found
