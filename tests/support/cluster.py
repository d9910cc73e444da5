"""What the cluster tests (tests/cluster/) share: the cluster they start (ops/cluster.py), an
app in the test process on the cluster's own PostgreSQL to set up data and to count what was
lost, and buyers that go through the balancer and ask again as a real client would."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import threading
import time
import uuid
from collections import Counter
from typing import Any

from flask import Flask
from sqlalchemy import text

PASSWORD = "cluster-pass-123"  # noqa: S105 - throwaway test customers
# A buyer asks again after an answer that is not the final one (a node dying: 502/503 from the
# balancer, a dropped connection), at most this often, pausing a little between.
RETRIES = 40
RETRY_PAUSE_SECONDS = 0.25


def cluster_app(database_url: str, redis_url: str) -> Flask:
    """An app in the test process on the cluster's PostgreSQL (directly, not through PgBouncer)
    and Redis, to set data up and check it."""
    from app import create_app

    return create_app({
        "APP_ENV": "test",
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url.replace("postgresql://", "postgresql+psycopg://"),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": False,
        "RATELIMIT_ENABLED": False,
        "FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",
        "LOG_LEVEL": "WARNING",
        # The tests restart PostgreSQL: a pooled connection is checked before each use.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    })  # fmt: skip


def add_customers(app: Flask, count: int, prefix: str) -> list[str]:
    """``count`` customers (cheap password hashes); their e-mail addresses."""
    from app.extensions import db
    from app.services import customers

    with app.app_context():
        emails = [f"{prefix}{n}.{uuid.uuid4().hex[:6]}@cluster.example" for n in range(count)]
        for n, email in enumerate(emails):
            customers.sign_up(db.session, app.appbuilder.sm, f"Buyer {n}", email, PASSWORD)
        db.session.remove()
    return emails


def add_event(app: Flask, name: str, *, places: int) -> dict[str, int]:
    """A published event on sale with one general-admission section of ``places``."""
    from app.extensions import db
    from app.models import Event, EventSection, Partner
    from app.models.base import utcnow
    from app.services.events import generate_spots
    from app.services.scoping import SYSTEM

    with app.app_context():
        partner = db.session.query(Partner).filter_by(name="Cluster").one_or_none()
        if partner is None:
            partner = Partner(
                name="Cluster", status="approved", fee_percent=10, fee_fixed_cents=100
            )
            db.session.add(partner)
        starts = utcnow().replace(microsecond=0) + dt.timedelta(days=7)
        event = Event(partner=partner, name=name, venue="Arena", city="Sao Paulo",
                      starts_at=starts, currency="BRL")  # fmt: skip
        event.sections.append(EventSection(name="Pista", kind="general", price_cents=10000))
        db.session.add(event)
        db.session.commit()
        generate_spots(db.session, event.sections[0].id, SYSTEM, quantity=places)
        event.publish()
        db.session.commit()
        found = {"event_id": event.id, "section_id": event.sections[0].id}
        db.session.remove()
    return found


def losses(app: Flask, event_id: int) -> dict[str, int]:
    """What a fault may have cost, counted in the database: spots with two valid tickets, cards
    charged twice for one order (or charged with no paid order to show for it), paid orders
    without all their tickets, payments left pending."""
    from app.extensions import db

    queries = {
        "sold_twice": """SELECT count(*) FROM (SELECT t.spot_id FROM ticket t JOIN "order" o
            ON o.id = t.order_id WHERE o.event_id = :e AND t.status = 'valid'
            GROUP BY t.spot_id HAVING count(*) > 1) s""",
        # Every capture the acquirer kept (not refunded) must belong to a paid order, one each.
        "charged_twice": """SELECT count(*) FROM (SELECT p.order_id FROM payment p
            JOIN sim_acquirer_charge c ON c.id = p.gateway_ref JOIN "order" o ON o.id = p.order_id
            WHERE o.event_id = :e AND c.status = 'captured' AND c.refunded_cents < c.amount_cents
            GROUP BY p.order_id HAVING count(*) > 1) s""",
        "charged_without_order": """SELECT count(*) FROM payment p
            JOIN sim_acquirer_charge c ON c.id = p.gateway_ref JOIN "order" o ON o.id = p.order_id
            WHERE o.event_id = :e AND c.status = 'captured' AND c.refunded_cents < c.amount_cents
            AND o.status <> 'paid'""",
        "paid_without_tickets": """SELECT count(*) FROM "order" o WHERE o.event_id = :e
            AND o.status = 'paid' AND NOT EXISTS (SELECT 1 FROM ticket t WHERE t.order_id = o.id
            AND t.status = 'valid')""",
        # A sold spot has its valid ticket, and a valid ticket its sold spot.
        "spots_without_ticket": """SELECT abs((SELECT count(*) FROM event_spot s
            WHERE s.event_id = :e AND s.status = 'sold') - (SELECT count(*) FROM ticket t
            JOIN "order" o ON o.id = t.order_id WHERE o.event_id = :e AND t.status = 'valid'))""",
        "payments_pending": """SELECT count(*) FROM payment p JOIN "order" o ON o.id = p.order_id
            WHERE o.event_id = :e AND p.status = 'pending'""",
    }
    with app.app_context():
        found = {name: db.session.execute(text(sql), {"e": event_id}).scalar_one()
                 for name, sql in queries.items()}  # fmt: skip
        db.session.remove()
    return found


def sold(app: Flask, event_id: int) -> dict[str, int]:
    """Paid orders and valid tickets of the event."""
    from app.extensions import db

    with app.app_context():
        orders, tickets = db.session.execute(
            text("""SELECT (SELECT count(*) FROM "order" WHERE event_id = :e AND status = 'paid'),
                (SELECT count(*) FROM ticket t JOIN "order" o ON o.id = t.order_id
                 WHERE o.event_id = :e AND t.status = 'valid')"""),
            {"e": event_id},
        ).one()  # fmt: skip
        db.session.remove()
    return {"orders": orders, "tickets": tickets}


class Answers:
    """Status codes seen by every buyer, by kind of request, from many threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codes: Counter[tuple[str, int]] = Counter()
        self.bodies: list[tuple[str, int, str]] = []  # what the 5xx said, for the report

    def add(self, name: str, status: int, body: Any) -> None:
        with self.lock:
            self.codes[(name, status)] += 1
            if status >= 500 and len(self.bodies) < 50:
                self.bodies.append((name, status, json.dumps(body)[:200]))

    def count(self, status: int) -> int:
        return sum(n for (_, code), n in self.codes.items() if code == status)


class Buyer:
    """A customer of the API through the balancer, on a keep-alive connection that it opens
    again when the node behind it dies."""

    def __init__(self, base: str, answers: Answers) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.answers = answers
        self.conn: http.client.HTTPConnection | None = None
        self.auth: dict[str, str] = {}

    def call(
        self, name: str, method: str, path: str, body: dict | None = None,
        headers: dict | None = None,
    ) -> tuple[int, dict]:  # fmt: skip
        """(status, JSON body); 599 for a connection that failed."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        payload = json.dumps(body).encode() if body is not None else None
        try:
            self.conn.request(method, path, payload, {
                "Content-Type": "application/json", **self.auth, **(headers or {})})  # fmt: skip
            response = self.conn.getresponse()
            data = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            status, data = 599, b""
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {"raw": data[:200].decode(errors="replace")}
        self.answers.add(name, status, parsed)
        return status, parsed

    def again(
        self, name: str, method: str, path: str, body: dict | None = None,
        headers: dict | None = None,
    ) -> tuple[int, dict]:  # fmt: skip
        """The request until it gets an answer that is not a failure of the cluster (5xx or a
        dropped connection): what a client with an Idempotency-Key does."""
        for _ in range(RETRIES):
            status, answer = self.call(name, method, path, body, headers)
            if status < 500:
                return status, answer
            time.sleep(RETRY_PAUSE_SECONDS)
        return status, answer

    def log_in(self, email: str) -> None:
        login = {"username": email, "password": PASSWORD, "provider": "db"}
        status, answer = self.again("login", "POST", "/api/v1/security/login", login)
        assert status == 200, (status, answer)
        self.auth = {"Authorization": f"Bearer {answer['access_token']}"}

    def card(self) -> str:
        status, answer = self.again("tokenize", "POST", "/sim-acquirer/v1/tokens", {
            "number": "4242424242424242", "exp_month": 12, "exp_year": dt.date.today().year + 2,
            "cvc": "123", "holder_name": "Cluster"})  # fmt: skip
        assert status == 201, (status, answer)
        return answer["token"]

    def buy(self, event: dict[str, int], quantity: int) -> tuple[int, dict]:
        """Hold ``quantity`` places and pay, each asked again through failures; the checkout
        always with the same Idempotency-Key and card token. (409, ...) when sold out."""
        # Asked again under its key after a lost answer, the hold answers the cart it made.
        status, hold = self.again("hold", "POST", "/api/v1/holds/", {
            "event_id": event["event_id"], "section_id": event["section_id"],
            "quantity": quantity}, {"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
        if status not in (200, 201):
            return status, hold
        token, key = self.card(), uuid.uuid4().hex
        return self.again("checkout", "POST", f"/api/v1/holds/{hold['result']['id']}/checkout",
                          {"card_token": token}, {"Idempotency-Key": key})  # fmt: skip


def reconcile(app: Flask, *, minutes_later: int = 3) -> dict[str, int]:
    """Run the reconcile task's work now as it would run ``minutes_later`` (after a payment is
    stale): what the beat does every minute in the cluster."""
    from app.extensions import db
    from app.models.base import utcnow
    from app.services import purchase
    from app.services.payments import gateway

    with app.app_context():
        later = utcnow() + dt.timedelta(minutes=minutes_later)
        done = purchase.reconcile.reconcile_payments(db.session, gateway(), later)
        db.session.remove()
    return done


def expire_abandoned_holds(app: Flask, event_id: int, *, minutes_later: int = 11) -> int:
    """Expire, as the hold-expiry task would ``minutes_later``, the holds whose buyer never
    heard of them (made on a node that died before answering: the buyer held again); returns
    the event's places on sale afterwards."""
    from app.extensions import db
    from app.models.base import utcnow
    from app.services import purchase

    with app.app_context():
        later = utcnow() + dt.timedelta(minutes=minutes_later)
        purchase.release.release_expired_holds(db.session, now=later)
        free = db.session.execute(
            text("SELECT count(*) FROM event_spot WHERE event_id = :e AND status = 'available'"),
            {"e": event_id},
        ).scalar_one()
        db.session.remove()
    return free


# What every fault test of a sale expects to count (``losses``): nothing.
NOTHING_LOST = {"sold_twice": 0, "charged_twice": 0, "charged_without_order": 0,
                "paid_without_tickets": 0, "spots_without_ticket": 0,
                "payments_pending": 0}  # fmt: skip


class Sale:
    """An on-sale through the balancer: each customer on a thread of its own logs in, then buys
    ``per_order`` places again and again (asking again through failures) until an answer other
    than paid stops it. ``outcomes`` holds every purchase's last status, ``answers`` every
    request's."""

    def __init__(
        self, base: str, app: Flask, event: dict[str, int], emails: list[str], per_order: int
    ) -> None:
        self.app, self.event = app, event
        self.answers = Answers()
        self.outcomes: list[int] = []
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._shop, args=(base, email, per_order)) for email in emails
        ]
        for thread in self.threads:
            thread.start()

    def _shop(self, base: str, email: str, per_order: int) -> None:
        buyer = Buyer(base, self.answers)
        buyer.log_in(email)
        while True:
            status, _ = buyer.buy(self.event, per_order)
            with self._lock:
                self.outcomes.append(status)
            if status not in (200, 201):  # 200: a checkout asked again, answered as before
                return

    def wait_until_sold(self, tickets: int, timeout: float = 60) -> None:
        """Until ``tickets`` are sold: the sale is under way."""
        deadline = time.monotonic() + timeout
        while sold(self.app, self.event["event_id"])["tickets"] < tickets:
            assert time.monotonic() < deadline, "the sale did not start"
            time.sleep(0.05)

    def finish(self, timeout: float) -> None:
        """Until every buyer has stopped."""
        for thread in self.threads:
            thread.join(timeout=timeout)
        assert not any(thread.is_alive() for thread in self.threads)
