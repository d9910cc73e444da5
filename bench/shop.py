"""The shop as the on-sale benchmarks drive it: a seeded database, buyers that hold and pay
through the customer API, and the count of spots sold more than once."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from common import ROOT, AsyncClient, Client, fresh_schema

sys.path.insert(0, str(ROOT))

PASSWORD = "bench-pass-123"  # noqa: S105 - throwaway bench users
PARTNER = "Bench"
# A hold answered "busy" (503) or a dropped connection (599) is asked again, as the shop's
# "try again" would be, at most this many times before the buyer gives up.
RETRIES = 10
HOLDS_PATH = "/api/v1/holds/"
TOKENS_PATH = "/sim-acquirer/v1/tokens"


def seed(database_url: str, buyers: int) -> tuple[Any, list[str]]:
    """Fresh schema, an approved partner and ``buyers`` customers; the app (to add events with)
    and the customers' emails."""
    os.environ["DATABASE_URL"] = database_url  # the server started later inherits it
    os.environ.setdefault("PASSWORD_HASH_METHOD", "pbkdf2:sha256:1")

    from app import create_app
    from app.extensions import db
    from app.models import Partner
    from app.services import customers
    from app.views.roles import sync_permissions

    app = create_app({"LOG_LEVEL": "WARNING"})
    with app.app_context():
        fresh_schema(db)
        sync_permissions(app.appbuilder)
        db.session.add(
            Partner(name=PARTNER, status="approved", fee_percent=10, fee_fixed_cents=100)
        )
        db.session.commit()
        emails = [f"buyer{n}@bench.example" for n in range(buyers)]
        for n, email in enumerate(emails):
            customers.sign_up(db.session, app.appbuilder.sm, f"Buyer {n}", email, PASSWORD)
    return app, emails


def add_event(
    app: Any,
    sections: int,
    *,
    rows: int = 0,
    seats: int = 0,
    places: int = 0,
    waiting_room: int = 0,
) -> dict[str, Any]:
    """A published event on sale of ``sections`` seated sections of ``rows`` x ``seats``, or
    (``places``) general-admission sections of that many places each."""
    from app.extensions import db
    from app.models import Event, EventSection, Partner
    from app.models.base import utcnow
    from app.services.events import generate_spots
    from app.services.scoping import SYSTEM

    kind = "general" if places else "seated"
    with app.app_context():
        partner = db.session.query(Partner).filter_by(name=PARTNER).one()
        starts = utcnow().replace(microsecond=0) + dt.timedelta(days=7)
        event = Event(partner=partner, name="Bench Night", venue="Arena", city="Sao Paulo",
                      starts_at=starts, currency="BRL",
                      waiting_room_per_minute=waiting_room or None)  # fmt: skip
        for n in range(sections):
            event.sections.append(
                EventSection(name=f"Sector {n + 1}", kind=kind, price_cents=10000)
            )
        db.session.add(event)
        db.session.commit()
        for section in event.sections:
            if places:
                generate_spots(db.session, section.id, SYSTEM, quantity=places)
            else:
                generate_spots(db.session, section.id, SYSTEM, first_row="A",
                               last_row=chr(ord("A") + rows - 1), seats_per_row=seats)  # fmt: skip
        event.publish()
        db.session.commit()
        return {
            "event_id": event.id,
            "sections": [s.id for s in event.sections],
            "capacity": sections * (places or rows * seats),
        }


def card_tokens(app: Any, count: int) -> list[str]:
    """``count`` single-use tokens of the approved test card (one per order)."""
    from app import sim_acquirer

    with app.app_context():
        return [sim_acquirer.tokenize(approved_card())["token"] for _ in range(count)]


def approved_card() -> dict[str, Any]:
    return {"number": "4242424242424242", "exp_month": 12, "exp_year": dt.date.today().year + 2,
            "cvc": "123", "holder_name": "Bench"}  # fmt: skip


def prepare(
    database_url: str, buyers: int, rows: int, seats: int, sections: int, waiting_room: int
) -> dict[str, Any]:
    """Fresh schema, one event of sections x rows x seats, buyers, one card token per seat."""
    app, emails = seed(database_url, buyers)
    setup = add_event(app, sections, rows=rows, seats=seats, waiting_room=waiting_room)
    return {**setup, "app": app, "emails": emails, "tokens": card_tokens(app, setup["capacity"])}


def log_in(base: str, emails: list[str]) -> list[str]:
    """An API token (JWT) per customer."""
    client = Client(base)
    tokens = []
    for email in emails:
        status, body, _ = client.call(
            "POST", "/api/v1/security/login",
            {"username": email, "password": PASSWORD, "provider": "db"},
        )  # fmt: skip
        if status != 200:
            raise SystemExit(f"login failed for {email}: {status} {body}")
        tokens.append(body["access_token"])
    return tokens


class Tally:
    """Status codes, milliseconds per kind of request and tickets sold, from many threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codes: Counter[int] = Counter()
        self.ms: defaultdict[str, list[float]] = defaultdict(list)
        self.tickets = 0

    def add(self, name: str, status: int, ms: float, tickets: int = 0) -> None:
        with self.lock:
            self.codes[status] += 1
            self.ms[name].append(ms)
            self.tickets += tickets

    @property
    def errors_5xx(self) -> int:
        return sum(n for code, n in self.codes.items() if code >= 500)


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


class Buyer:
    """One customer's requests on one connection (AsyncClient), each counted in the tally: a
    crowd of buyers runs on one event loop, where a thread each cost the load generator twice
    the CPU, on the cores the server shares."""

    def __init__(self, client: AsyncClient, jwt: str, tally: Tally) -> None:
        self.client = client
        self.auth = {"Authorization": f"Bearer {jwt}"}
        self.tally = tally
        self.held_at = 0.0  # perf_counter() when the last hold was placed

    async def call(
        self, name: str, path: str, body: dict | None, headers: dict | None = None
    ) -> tuple[int, dict]:
        call = self.client.call("POST", path, body, {**self.auth, **(headers or {})})
        status, answer, ms = await call
        tickets = len(answer["result"]["tickets"]) if name == "checkout" and status == 201 else 0
        self.tally.add(name, status, ms, tickets)
        return status, answer

    async def tokenize(self) -> tuple[int, str]:
        """The card form's request to the acquirer (a third party: no login of ours):
        (status, token)."""
        status, answer, ms = await self.client.call("POST", TOKENS_PATH, approved_card())
        self.tally.add("tokenize", status, ms)
        return status, answer.get("token", "")

    async def buy(
        self, event_id: int, sections: list[int], quantity: int, card: Callable[[], Awaitable[str]]
    ) -> tuple[int, dict]:
        """Hold ``quantity`` best-available spots in the first of ``sections`` that has them
        (dropping from the list each that refuses), then pay with ``await card()``. The last
        answer: the checkout's, 409 when every section refused, or what stopped the hold (a
        waiting room, an error)."""
        while sections:
            key = _key()  # asked again: the cart it made
            for _ in range(RETRIES):
                body = {"event_id": event_id, "section_id": sections[0], "quantity": quantity}
                status, answer = await self.call("hold", HOLDS_PATH, body, key)
                if status not in (503, 599):
                    break
            if status == 409 or (status == 422 and answer.get("error") == "hold_limit"):
                sections.pop(0)
                continue
            if status not in (200, 201):
                return status, answer
            self.held_at = time.perf_counter()
            path = f"{HOLDS_PATH}{answer['result']['id']}/checkout"
            return await self.call("checkout", path, {"card_token": await card()}, _key())
        return 409, {"error": "spots_unavailable"}


async def connected_buyers(base: str, jwts: list[str], tally: Tally) -> list[Buyer]:
    """A buyer per token, each on a connection of its own opened now (the crowd is on the page
    already); close them with ``Buyer.client.close()``."""
    clients = [AsyncClient(base) for _ in jwts]
    await asyncio.gather(*(client.connect() for client in clients))
    return [Buyer(client, jwt, tally) for client, jwt in zip(clients, jwts, strict=True)]


def sold_twice(database_url: str, event_id: int | None = None) -> tuple[int, int]:
    """(spots with more than one valid ticket, spots sold): of every event (a spot sold twice
    anywhere counts), the spots sold of ``event_id`` only if given."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        twice = conn.execute(
            text("SELECT count(*) FROM (SELECT spot_id FROM ticket WHERE status = 'valid' "
                 "GROUP BY spot_id HAVING count(*) > 1) t")
        ).scalar_one()  # fmt: skip
        sold = conn.execute(
            text("SELECT count(*) FROM event_spot WHERE status = 'sold' "
                 "AND (CAST(:event_id AS integer) IS NULL OR event_id = :event_id)"),
            {"event_id": event_id},
        ).scalar_one()  # fmt: skip
    engine.dispose()
    return twice, sold
