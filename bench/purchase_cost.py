"""What one purchase costs: CPU of the app and of PostgreSQL, statements and transactions per order.

Runs N orders one after another (hold the best 2 seats, pay with the approved test card) through
the Flask test client against its own PostgreSQL database, so that nothing waits on anything else:
the figures are the work one order takes, the ceiling under load is about (cores x 1000) /
(app ms + PostgreSQL ms) orders per second. A baseline in the same process writes the bare SQL
of a durable sale on plain psycopg, and the ratio to it is printed. Not a test: run it by hand.

    .venv/bin/python bench/purchase_cost.py           # 300 orders
    .venv/bin/python bench/purchase_cost.py --orders 1000
    .venv/bin/python bench/purchase_cost.py --quantity 1   # the burst's orders (onsale.py --burst)
    .venv/bin/python bench/purchase_cost.py --instructions  # the app's instructions, under callgrind

Seconds of CPU swing from run to run on a shared machine (here the same code measured 6.2 to
13 ms per order within minutes). ``--instructions`` runs the same orders (30 unless --orders is
given) under valgrind's callgrind, which counts the instructions the app executes per order,
only while the orders run: the same count on every run of the same code (20.70 and 20.74
million, twice), whatever else the machine does, so a change of 1% shows. It counts the app's
process only, not PostgreSQL's.

It also measures the two other requests of a flash crowd, a card tokenized and a hold refused
in a sold-out section with an Idempotency-Key (both answered before Flask), and from the three
prints the least CPU ``bench/onsale.py --burst`` can take on this machine (500 buyers for 100
places: 500 tokens, 400 refusals, 100 orders), whatever the server does with its cores: a
floor for its "sold out within" figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import shop
from common import postgres_cpu_seconds
from sqlalchemy import event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/bilheteria_bench_cost"
    )
    parser.add_argument("--orders", type=int, help="300, or 30 with --instructions")
    parser.add_argument("--quantity", type=int, default=2, help="tickets per order")
    parser.add_argument(
        "--instructions", action="store_true",
        help="count the app's instructions per order under callgrind (valgrind)",
    )  # fmt: skip
    args = parser.parse_args()
    args.orders = args.orders or (30 if args.instructions else 300)
    if args.instructions and not os.environ.get(_UNDER_CALLGRIND):
        raise SystemExit(count_instructions(args))
    admin_url, db_name = args.database_url.rsplit("/", 1)
    for sql in (f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)", f"CREATE DATABASE {db_name}"):
        subprocess.run(["psql", f"{admin_url}/postgres", "-qc", sql], check=True)
    os.environ["RATELIMIT_ENABLED"] = "false"
    setup = shop.prepare(args.database_url, 20, 20, 25, 4, waiting_room=0)

    from app import create_app
    from app.extensions import db

    app = create_app({"LOG_LEVEL": "WARNING", "RATELIMIT_ENABLED": False})
    client = app.test_client()
    jwts = [
        client.post(
            "/api/v1/security/login",
            json={"username": email, "password": shop.PASSWORD, "provider": "db"},
        ).get_json()["access_token"]
        for email in setup["emails"]
    ]
    cards = iter(setup["tokens"])

    def order(n: int) -> None:
        auth = {"Authorization": f"Bearer {jwts[n % len(jwts)]}"}
        held = client.post(
            "/api/v1/holds/",
            json={"event_id": setup["event_id"], "section_id": setup["sections"][n % 4],
                  "quantity": args.quantity},
            headers=auth,
        )  # fmt: skip
        assert held.status_code == 201, held.get_json()
        paid = client.post(
            f"/api/v1/holds/{held.get_json()['result']['id']}/checkout",
            json={"card_token": next(cards)},
            headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert paid.status_code == 201, paid.get_json()

    for n in range(20):  # warm up: caches, prepared statements
        order(n)
    counts = {"statements": 0, "commits": 0}
    # App CPU inside Connection.execute (SQLAlchemy and psycopg: parameters, the round trip,
    # the result's columns), from its before_execute to its after_execute event.
    executing = {"since": 0.0, "cpu": 0.0}

    def count_statement(*_args: object) -> None:
        counts["statements"] += 1

    def count_commit(*_args: object) -> None:
        counts["commits"] += 1

    def execute_starts(*_args: object) -> None:
        executing["since"] = time.process_time()

    def execute_ends(*_args: object) -> None:
        executing["cpu"] += time.process_time() - executing["since"]

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count_statement)
    event.listen(engine, "commit", count_commit)
    event.listen(engine, "before_execute", execute_starts)
    event.listen(engine, "after_execute", execute_ends)
    wall, cpu, pg = time.perf_counter(), time.process_time(), postgres_cpu_seconds()
    with callgrind_counting(args.instructions):
        for n in range(20, 20 + args.orders):
            order(n)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if args.instructions:
        return  # the figures of a run under valgrind are its own; count_instructions prints
    pg = postgres_cpu_seconds() - pg
    per = {
        "orders": args.orders,
        "wall_ms_per_order": round(wall / args.orders * 1000, 2),
        "app_cpu_ms_per_order": round(cpu / args.orders * 1000, 2),
        "postgres_cpu_ms_per_order": round(pg / args.orders * 1000, 2),
        "statements_per_order": round(counts["statements"] / args.orders, 1),
        "commits_per_order": round(counts["commits"] / args.orders, 1),
        "execute_cpu_ms_per_order": round(executing["cpu"] / args.orders * 1000, 2),
    }
    order_ms = per["app_cpu_ms_per_order"] + per["postgres_cpu_ms_per_order"]
    per["ceiling_tickets_per_s_on_2_cores"] = round(2 * 1000 * args.quantity / order_ms, 1)
    tokenize = request_cost(
        lambda _: client.post("/sim-acquirer/v1/tokens", json=shop.approved_card()), 201
    )
    gone = shop.add_event(app, 1, places=1)  # one place, taken by the first buyer
    refused_body = {"event_id": gone["event_id"], "section_id": gone["sections"][0], "quantity": 1}
    for n in range(2):  # the taker, then a refusal by the app (the fast path remembers it)
        client.post("/api/v1/holds/", json=refused_body,
                    headers={"Authorization": f"Bearer {jwts[n]}"})  # fmt: skip
    refusal = request_cost(
        lambda n: client.post(
            "/api/v1/holds/",
            json=refused_body,
            headers={  # keyed, as the burst's buyers ask (bench/shop.py)
                "Authorization": f"Bearer {jwts[1 + n % (len(jwts) - 1)]}",
                "Idempotency-Key": uuid.uuid4().hex,
            },
        ),
        409,
    )
    per["tokenize_cpu_ms"], per["refusal_cpu_ms"] = tokenize, refusal
    per["burst_floor_s"] = round((500 * tokenize + 400 * refusal + 100 * order_ms) / 2 / 1000, 2)
    floor = bare_sale_cost(args.database_url, setup, args.orders)
    per["baseline_cpu_ms_per_order"] = floor
    per["ratio_to_baseline"] = round(order_ms / floor, 1)
    print(f"{args.orders} orders of {args.quantity} ticket(s), one at a time: {per['wall_ms_per_order']} ms each; "
          f"app CPU {per['app_cpu_ms_per_order']} ms, PostgreSQL CPU "
          f"{per['postgres_cpu_ms_per_order']} ms, {per['statements_per_order']} statements "
          f"(an executemany counts once), {per['commits_per_order']} commits that wrote; "
          f"ceiling on 2 cores ~{per['ceiling_tickets_per_s_on_2_cores']} tickets/s")  # fmt: skip
    print(f"of the app's CPU, {per['execute_cpu_ms_per_order']} ms is spent executing statements "
          f"(SQLAlchemy and psycopg: parameters, round trips, result columns)")  # fmt: skip
    print(f"baseline, the bare SQL of a durable sale in one transaction: {floor} ms of CPU "
          f"(client + PostgreSQL) per order; the purchase path costs {per['ratio_to_baseline']}x")  # fmt: skip
    print(f"a card tokenized: {tokenize} ms of CPU (app + PostgreSQL); a hold refused in a sold-out"
          f" section: {refusal} ms; so a burst of 500 buyers for 100 places of {args.quantity}"
          f" ticket(s) takes at least {per['burst_floor_s']} s on 2 cores")  # fmt: skip
    print(json.dumps(per))


_UNDER_CALLGRIND = "PURCHASE_COST_UNDER_CALLGRIND"


def count_instructions(args: argparse.Namespace) -> int:
    """Run this script again under callgrind, counting only its orders; print the instructions
    per order (and the last line, JSON). The exit status of the run."""
    orders = args.orders
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={tmp}/callgrind.out.%p",  # forks (subprocesses) write apart
            sys.executable, __file__, *sys.argv[1:], "--orders", str(orders),
        ]  # fmt: skip
        run = subprocess.run(
            command, env={**os.environ, _UNDER_CALLGRIND: "1"}, capture_output=True, text=True
        )
        if run.returncode != 0:
            print(run.stdout[-2000:], run.stderr[-2000:])
            return run.returncode
        totals = [
            sum(int(line.split()[1]) for line in out.read_text().splitlines()
                if line.startswith("totals:"))
            for out in Path(tmp).glob("callgrind.out.*")
        ]  # fmt: skip
        if not totals:
            print("callgrind wrote no counts:", run.stderr[-2000:])
            return 1
        total = max(totals)  # the forks (subprocesses) counted nothing
    per = round(total / orders / 1e6, 2)
    print(f"{orders} orders of {args.quantity} ticket(s): {per} million instructions per order "
          f"in the app (callgrind; PostgreSQL not counted)")  # fmt: skip
    print(json.dumps({"orders": orders, "app_minstr_per_order": per}))
    return 0


@contextlib.contextmanager
def callgrind_counting(on: bool) -> Iterator[None]:
    """Count instructions (callgrind_control -i) only inside, when ``on``."""
    if on:
        subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=True,
                       capture_output=True)  # fmt: skip
    try:
        yield
    finally:
        if on:
            subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], check=True,
                           capture_output=True)  # fmt: skip


def request_cost(send: Any, status: int, requests: int = 300) -> float:
    """CPU (this process + PostgreSQL) in ms per request of ``send(n)``, which must answer
    ``status``."""
    cpu, pg = time.process_time(), postgres_cpu_seconds()
    for n in range(requests):
        response = send(n)
        assert response.status_code == status, response.get_data(as_text=True)[:300]
    cpu, pg = time.process_time() - cpu, postgres_cpu_seconds() - pg
    return round((cpu + pg) / requests * 1000, 2)


def bare_sale_cost(database_url: str, setup: dict, orders: int) -> float:
    """CPU (this process + PostgreSQL) per order of the least a safe sale of 2 seats writes, on
    plain psycopg in one transaction: lock 2 free seats (SKIP LOCKED), sell them, insert the
    order, its tickets and its payment. No holds, no card, no ledger, no HTTP: a floor to
    compare the purchase path with, not a design."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        customer = conn.execute("SELECT id FROM customer ORDER BY id LIMIT 1").fetchone()[0]
        cpu, pg = time.process_time(), postgres_cpu_seconds()
        for n in range(orders):
            section = setup["sections"][n % len(setup["sections"])]
            with conn.transaction():
                seats = [
                    row[0]
                    for row in conn.execute(
                        "SELECT id FROM event_spot WHERE section_id = %s AND status = 'available'"
                        " ORDER BY position LIMIT 2 FOR UPDATE SKIP LOCKED",
                        (section,),
                    )
                ]
                conn.execute("UPDATE event_spot SET status = 'sold' WHERE id = ANY(%s)", (seats,))
                order = conn.execute(
                    'INSERT INTO "order" (customer_id, event_id, status, total_cents, currency,'
                    " created_at, paid_at) VALUES (%s, %s, 'paid', 20000, 'BRL', now(), now())"
                    " RETURNING id",
                    (customer, setup["event_id"]),
                ).fetchone()[0]
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO ticket (order_id, event_id, section_id, spot_id, price_cents,"
                        " currency, status, issued_at) VALUES (%s, %s, %s, %s, 10000, 'BRL',"
                        " 'valid', now())",
                        [(order, setup["event_id"], section, seat) for seat in seats],
                    )
                conn.execute(
                    "INSERT INTO payment (order_id, idempotency_key, request_fingerprint, status,"
                    " amount_cents, currency, fee_cents, net_cents, gateway, refunded_cents,"
                    " created_at) VALUES (%s, %s, 'x', 'captured', 20000, 'BRL', 2200, 17800,"
                    " 'baseline', 0, now())",
                    (order, uuid.uuid4().hex),
                )
        cpu, pg = time.process_time() - cpu, postgres_cpu_seconds() - pg
    return round((cpu + pg) / orders * 1000, 2)


if __name__ == "__main__":
    main()
