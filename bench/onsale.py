"""On-sale benchmark: N concurrent buyers against one event of 2,000 seats until sold out.

Starts the production server (app/server.py) on PostgreSQL (or targets --url), then every buyer loops: hold the best N
available seats in a section, pay with the approved test card. Prints tickets per second,
p50/p95/p99 of hold and checkout, the 5xx count and how many spots were sold more than once;
the last line is one JSON object. Not a test: run it by hand.

With ``--waiting-room R`` the event has a waiting room letting in R buyers per minute: each
buyer joins the line, sleeps until the turn it was given, then holds and pays; a purchase ends
the turn, so the buyer joins again for the next order. The line's own figures (the join
requests, time spent in line, time from joining to tickets) are printed apart from the
purchase path's. A rate above what the server sells cannot keep the purchase path fast.

    .venv/bin/python bench/onsale.py                  # own database bilheteria_bench, 2 x 4
    .venv/bin/python bench/onsale.py --buyers 200 --per-order 4 --workers 4
    .venv/bin/python bench/onsale.py --waiting-room 7200
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from common import Client, fresh_schema, percentile, start_server

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "bench-pass-123"  # noqa: S105 - throwaway bench users


def prepare(
    database_url: str, buyers: int, rows: int, seats: int, sections: int, waiting_room: int
) -> dict:
    """Fresh schema, one published event of sections x rows x seats, buyers and a card token."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("PASSWORD_HASH_METHOD", "pbkdf2:sha256:1")

    from app import create_app, sim_acquirer
    from app.extensions import db
    from app.models import Event, EventSection, Partner
    from app.models.base import utcnow
    from app.services import customers
    from app.services.events import generate_spots
    from app.services.scoping import SYSTEM
    from app.views.roles import sync_permissions

    app = create_app({"LOG_LEVEL": "WARNING"})
    with app.app_context():
        fresh_schema(db)
        sync_permissions(app.appbuilder)
        partner = Partner(name="Bench", status="approved", fee_percent=10, fee_fixed_cents=100)
        starts = utcnow().replace(microsecond=0) + __import__("datetime").timedelta(days=7)
        event = Event(partner=partner, name="Bench Night", venue="Arena", city="Sao Paulo",
                      starts_at=starts, currency="BRL",
                      waiting_room_per_minute=waiting_room or None)  # fmt: skip
        for n in range(sections):
            event.sections.append(
                EventSection(name=f"Sector {n + 1}", kind="seated", price_cents=10000)
            )
        db.session.add(event)
        db.session.commit()

        for section in event.sections:
            last = chr(ord("A") + rows - 1)
            generate_spots(db.session, section.id, SYSTEM, first_row="A", last_row=last,
                           seats_per_row=seats)  # fmt: skip
        event.publish()
        db.session.commit()
        emails = []
        for n in range(buyers):
            email = f"buyer{n}@bench.example"
            customers.sign_up(db.session, app.appbuilder.sm, f"Buyer {n}", email, PASSWORD)
            emails.append(email)
        # Card tokens are single-use: one per possible order.
        tokens = [
            sim_acquirer.tokenize(
                {"number": "4242424242424242", "exp_month": 12, "exp_year": utcnow().year + 2,
                 "cvc": "123", "holder_name": "Bench"}
            )["token"]
            for _ in range(sections * rows * seats)
        ]  # fmt: skip
        return {
            "event_id": event.id,
            "sections": [s.id for s in event.sections],
            "capacity": sections * rows * seats,
            "emails": emails,
            "tokens": tokens,
        }


def oversold(database_url: str) -> tuple[int, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        twice = conn.execute(
            text("SELECT count(*) FROM (SELECT spot_id FROM ticket WHERE status = 'valid' "
                 "GROUP BY spot_id HAVING count(*) > 1) t")
        ).scalar()  # fmt: skip
        sold = conn.execute(text("SELECT count(*) FROM event_spot WHERE status = 'sold'")).scalar()
    engine.dispose()
    return twice, sold


def run(base: str, setup: dict, buyers: int, per_order: int) -> dict:
    tokens: list[str] = []
    for email in setup["emails"][:buyers]:
        status, body, _ = Client(base).call(
            "POST", "/api/v1/security/login",
            {"username": email, "password": PASSWORD, "provider": "db"},
        )  # fmt: skip
        if status != 200:
            raise SystemExit(f"login failed for {email}: {status} {body}")
        tokens.append(body["access_token"])

    lock = threading.Lock()
    hold_ms: list[float] = []
    checkout_ms: list[float] = []
    queue_ms: list[float] = []  # joining the line
    in_line_s: list[float] = []  # joining to being let in
    to_tickets_s: list[float] = []  # joining to a paid order
    codes: dict[int, int] = {}
    sold = [0]
    card_tokens = iter(setup["tokens"])
    start_gate = threading.Barrier(buyers + 1)

    def next_token() -> str:
        with lock:
            return next(card_tokens)

    def join_line(client: Client, auth: dict[str, str]) -> dict:
        status, body, ms = client.call("POST", f"/api/v1/queue/{setup['event_id']}", None, auth)
        with lock:
            queue_ms.append(ms)
            codes[status] = codes.get(status, 0) + 1
        if status != 200:
            raise SystemExit(f"waiting room answered {status}: {body}")
        return body["result"]

    def wait_turn(client: Client, auth: dict[str, str]) -> float:
        """Join the line and sleep until the turn it gives (the hold is the gate: a buyer
        early by a hair is told again how long to wait); returns when joined."""
        joined = time.perf_counter()
        turn = join_line(client, auth)
        if turn["status"] == "waiting":
            time.sleep(turn["wait_ms"] / 1000)
        with lock:
            in_line_s.append(time.perf_counter() - joined)
        return joined

    def buyer(jwt: str) -> None:
        client = Client(base)
        auth = {"Authorization": f"Bearer {jwt}"}
        sections = list(setup["sections"])
        random.shuffle(sections)
        start_gate.wait()
        joined = wait_turn(client, auth) if setup["waiting_room"] else 0.0
        while sections:
            section = sections[0]
            status, body, ms = client.call(
                "POST", "/api/v1/holds/",
                {"event_id": setup["event_id"], "section_id": section, "quantity": per_order},
                auth,
            )  # fmt: skip
            with lock:
                hold_ms.append(ms)
                codes[status] = codes.get(status, 0) + 1
            if status == 409 or (status == 422 and body.get("error") == "hold_limit"):
                sections.pop(0)
                continue
            if status == 403 and body.get("error") == "waiting_room":
                if "wait_ms" in body:  # early
                    time.sleep(body["wait_ms"] / 1000)
                else:  # the turn ran out
                    joined = wait_turn(client, auth)
                continue
            if status != 201:
                continue
            hold_id = body["result"]["id"]
            status, body, ms = client.call(
                "POST", f"/api/v1/holds/{hold_id}/checkout", {"card_token": next_token()},
                {**auth, "Idempotency-Key": uuid.uuid4().hex},
            )  # fmt: skip
            with lock:
                checkout_ms.append(ms)
                codes[status] = codes.get(status, 0) + 1
                if status == 201:
                    sold[0] += len(body["result"]["tickets"])
                    if setup["waiting_room"]:
                        to_tickets_s.append(time.perf_counter() - joined)
            if sold[0] >= setup["capacity"]:
                return
            if status == 201 and setup["waiting_room"]:
                joined = wait_turn(client, auth)  # a purchase ends the turn: in line again
            # The per-customer limit counts holds, not purchases: a buyer keeps buying.

    threads = [threading.Thread(target=buyer, args=(jwt,)) for jwt in tokens]
    for thread in threads:
        thread.start()
    start_gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "elapsed_s": elapsed,
        "tickets": sold[0],
        "hold_ms": hold_ms,
        "checkout_ms": checkout_ms,
        "queue_ms": queue_ms,
        "in_line_s": in_line_s,
        "to_tickets_s": to_tickets_s,
        "codes": codes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/bilheteria_bench"
    )
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--per-order", type=int, default=2)
    parser.add_argument("--sections", type=int, default=4)
    parser.add_argument(
        "--rows", type=int, default=20, choices=range(1, 27), metavar="1..26",
        help="rows A.. per section (lettered rows: at most 26)",
    )  # fmt: skip
    parser.add_argument("--seats", type=int, default=25)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--waiting-room", type=int, default=0, metavar="PER_MINUTE",
        help="give the event a waiting room letting in this many buyers per minute",
    )  # fmt: skip
    parser.add_argument("--url", help="target a running server (its database must be prepared)")
    args = parser.parse_args()

    admin_url = args.database_url.rsplit("/", 1)[0] + "/postgres"
    db_name = args.database_url.rsplit("/", 1)[1]
    subprocess.run(["psql", admin_url, "-qc", f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"],
                   check=True)  # fmt: skip
    subprocess.run(["psql", admin_url, "-qc", f"CREATE DATABASE {db_name}"], check=True)
    setup = prepare(
        args.database_url, args.buyers, args.rows, args.seats, args.sections, args.waiting_room
    )
    setup["waiting_room"] = args.waiting_room
    server = None
    base = args.url
    if base is None:
        server = start_server(
            {"DATABASE_URL": args.database_url}, args.port, args.workers, args.threads
        )
        base = f"http://127.0.0.1:{args.port}"
    try:
        result = run(base, setup, args.buyers, args.per_order)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
    twice, sold_spots = oversold(args.database_url)
    errors_5xx = sum(n for code, n in result["codes"].items() if code >= 500)
    tickets_per_s = result["tickets"] / result["elapsed_s"]
    all_ms = result["hold_ms"] + result["checkout_ms"]
    print(f"capacity {setup['capacity']} seats, {args.buyers} buyers, {args.per_order} per order, "
          f"server {args.workers} processes x {args.threads} threads, waiting room "
          f"{f'{args.waiting_room} buyers/min' if args.waiting_room else 'none'}")  # fmt: skip
    print(f"sold {result['tickets']} tickets ({sold_spots} spots sold) in "
          f"{result['elapsed_s']:.2f} s: {tickets_per_s:.0f} tickets/s")  # fmt: skip
    for name, values in (("hold", result["hold_ms"]), ("checkout", result["checkout_ms"])):
        print(f"{name:9s} n={len(values):5d} p50={percentile(values, 50):6.1f} ms "
              f"p95={percentile(values, 95):6.1f} ms p99={percentile(values, 99):6.1f} ms "
              f"mean={statistics.fmean(values) if values else 0:6.1f} ms")  # fmt: skip
    if args.waiting_room:
        queue_ms = result["queue_ms"]
        print(f"line      n={len(queue_ms):5d} p50={percentile(queue_ms, 50):6.1f} ms "
              f"p95={percentile(queue_ms, 95):6.1f} ms p99={percentile(queue_ms, 99):6.1f} ms "
              "(joining)")  # fmt: skip
        for name, values in (("in line", result["in_line_s"]),
                             ("to tickets", result["to_tickets_s"])):  # fmt: skip
            print(f"{name:10s} n={len(values):4d} p50={percentile(values, 50):5.2f} s "
                  f"p99={percentile(values, 99):5.2f} s (joining the line to "
                  f"{'being let in' if name == 'in line' else 'a paid order'})")  # fmt: skip
    print(f"status codes {dict(sorted(result['codes'].items()))}; 5xx: {errors_5xx}; "
          f"spots sold more than once: {twice}")  # fmt: skip
    print(json.dumps({
        "tickets_per_s": round(tickets_per_s, 1),
        "p99_ms": round(percentile(all_ms, 99), 1),
        "hold_p99_ms": round(percentile(result["hold_ms"], 99), 1),
        "checkout_p99_ms": round(percentile(result["checkout_ms"], 99), 1),
        "waiting_room_per_minute": args.waiting_room or None,
        "line_p99_ms": round(percentile(result["queue_ms"], 99), 1) if args.waiting_room else None,
        "to_tickets_p99_s": (
            round(percentile(result["to_tickets_s"], 99), 2) if args.waiting_room else None
        ),
        "errors_5xx": errors_5xx,
        "oversold": twice,
        "tickets": result["tickets"],
        "capacity": setup["capacity"],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
