"""Report memory benchmark: the sales report for 20,000 and for 200,000 tickets on PostgreSQL, in
CSV and XLSX, with each run's peak memory, so that flat memory shows. Not a test: run it by hand.

For each size, a fresh schema gets one partner, ten events and the tickets, orders (two tickets
each), captured payments and their ledger postings (one order in twenty refunded) by bulk SQL,
not the purchase API. Each report is then written by the report service in a process of its own:
once plain (time, ru_maxrss) and once under tracemalloc (peak of Python allocations). The last
line is one JSON object.

    .venv/bin/python bench/report_memory.py                  # own database bilheteria_bench_reports
    .venv/bin/python bench/report_memory.py --sizes 20000 200000 --per-order 2 --events 10
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from common import fresh_schema

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUIET = {"LOG_LEVEL": "WARNING", "LOG_JSON": "false"}


def app_for(database_url: str, **config: str):  # noqa: ANN201 - a Flask app
    os.environ["DATABASE_URL"] = database_url
    os.environ.update(QUIET)
    from app import create_app

    return create_app(config)


def seed(database_url: str, tickets: int, per_order: int, events: int) -> dict:
    """A fresh schema with ``tickets`` sold tickets, by bulk SQL. Returns what was made."""
    from sqlalchemy import text

    from app.extensions import db
    from app.models import Customer, Event, EventSection, Partner
    from app.models.base import utcnow
    from app.services import ledger

    app = app_for(database_url)
    started = time.perf_counter()
    with app.app_context():
        fresh_schema(db)
        ledger.forget_account_ids()
        partner = Partner(name="Bench", status="approved", fee_percent=10, fee_fixed_cents=100)
        now = utcnow().replace(microsecond=0)
        for n in range(events):
            event = Event(partner=partner, name=f"Bench Night {n + 1}", venue="Arena",
                          city="Sao Paulo", starts_at=now.replace(year=now.year + 1),
                          currency="BRL", status="published")  # fmt: skip
            event.sections.append(EventSection(name="Pista", kind="general", price_cents=10000))
            db.session.add(event)
        db.session.add(Customer(name="Bench Buyer", email="buyer@bench.example"))
        db.session.commit()
        customer_id = db.session.scalar(text("SELECT id FROM customer"))
        accounts = {
            "clearing": ledger.account_id(db.session, ledger.CLEARING),
            "fees": ledger.account_id(db.session, ledger.FEE_REVENUE),
            "partner": ledger.partner_account_id(db.session, partner.id, partner.name),
        }
        db.session.commit()
        sections = db.session.execute(text("SELECT id, event_id FROM event_section")).all()
        per_event = tickets // events
        orders = per_event // per_order
        params = {"customer": customer_id, "per_order": per_order, "orders": orders,
                  "spots": orders * per_order, "now": now, **accounts}  # fmt: skip
        with db.engine.begin() as conn:
            # The balance trigger would check each of the entries: they balance by construction.
            conn.execute(text("ALTER TABLE ledger_entry DISABLE TRIGGER ledger_entry_balanced"))
            for section_id, event_id in sections:
                at = {**params, "section": section_id, "event": event_id}
                conn.execute(text(
                    "INSERT INTO event_spot (section_id, event_id, label, position, status)"
                    " SELECT :section, :event, 'GA-' || g, g, 'sold'"
                    " FROM generate_series(1, :spots) g"), at)  # fmt: skip
                conn.execute(text(
                    'INSERT INTO "order" (customer_id, event_id, status, total_cents, currency,'
                    " created_at, paid_at)"
                    " SELECT :customer, :event, 'paid', 10000 * :per_order, 'BRL', :now, :now"
                    " FROM generate_series(1, :orders)"), at)  # fmt: skip
                conn.execute(text(
                    "INSERT INTO ticket (order_id, event_id, section_id, spot_id, price_cents,"
                    " currency, status, issued_at)"
                    " SELECT o.id, :event, :section, s.id, 10000, 'BRL', 'valid', :now"
                    " FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM event_spot"
                    "       WHERE section_id = :section) s"
                    ' JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM "order"'
                    "       WHERE event_id = :event) o ON o.n = (s.n - 1) / :per_order + 1"),
                    at)  # fmt: skip
            conn.execute(text(
                "INSERT INTO payment (order_id, idempotency_key, status, amount_cents, currency,"
                " fee_cents, net_cents, gateway, gateway_ref, request_fingerprint, created_at,"
                " captured_at)"
                " SELECT id, 'bench-' || id, 'captured', total_cents, 'BRL',"
                " total_cents / 10 + 100 * :per_order, total_cents - total_cents / 10"
                " - 100 * :per_order, 'simulated', 'ch_bench_' || id, 'bench', :now, :now"
                ' FROM "order"'), params)  # fmt: skip
            conn.execute(text(
                "INSERT INTO ledger_transaction (kind, cause_key, payment_id, memo, created_at)"
                " SELECT 'capture', 'capture:payment:' || id, id, 'Order ' || order_id, :now"
                " FROM payment"), params)  # fmt: skip
            # One order in twenty refunded (the platform's fee returned).
            conn.execute(text(
                "UPDATE payment SET status = 'refunded', refunded_at = :now WHERE id % 20 = 0"),
                params)  # fmt: skip
            conn.execute(text(
                'UPDATE "order" SET status = \'refunded\' WHERE id IN'
                " (SELECT order_id FROM payment WHERE status = 'refunded')"))  # fmt: skip
            conn.execute(text(
                "UPDATE ticket SET status = 'revoked', revoked_at = :now WHERE order_id IN"
                " (SELECT order_id FROM payment WHERE status = 'refunded')"), params)  # fmt: skip
            conn.execute(text(
                "INSERT INTO ledger_transaction (kind, cause_key, payment_id, memo, created_at)"
                " SELECT 'refund', 'refund:payment:' || id, id, 'Order ' || order_id"
                " || ' refunded', :now FROM payment WHERE status = 'refunded'"), params)  # fmt: skip
            for kind, account, column, sign in (
                ("capture", "clearing", "amount", 1),
                ("capture", "fees", "fee", -1),
                ("capture", "partner", "net", -1),
                ("refund", "partner", "net", 1),
                ("refund", "fees", "fee", 1),
                ("refund", "clearing", "amount", -1),
            ):
                conn.execute(text(
                    "INSERT INTO ledger_entry (transaction_id, account_id, amount_cents, currency)"
                    " SELECT t.id, :account, :sign * CASE :column WHEN 'amount' THEN p.amount_cents"
                    " WHEN 'fee' THEN p.fee_cents ELSE p.net_cents END, 'BRL'"
                    " FROM ledger_transaction t JOIN payment p ON p.id = t.payment_id"
                    " WHERE t.kind = :kind"),
                    {"account": accounts[account], "sign": sign, "column": column, "kind": kind},
                )  # fmt: skip
            conn.execute(text("ALTER TABLE ledger_entry ENABLE TRIGGER ledger_entry_balanced"))
            unbalanced = conn.execute(text(
                "SELECT count(*) FROM (SELECT transaction_id FROM ledger_entry"
                " GROUP BY transaction_id HAVING sum(amount_cents) <> 0) t")).scalar()  # fmt: skip
            assert unbalanced == 0
            conn.execute(text("ANALYZE"))
        counts = {
            table: db.session.scalar(text(f'SELECT count(*) FROM "{table}"'))  # noqa: S608 - fixed names
            for table in ("ticket", "order", "ledger_entry")
        }
        db.session.remove()
        db.engine.dispose()
    return {**counts, "seed_s": round(time.perf_counter() - started, 1)}


def measure(database_url: str, file_format: str) -> dict:
    """In this (fresh) process: write the sales report of every partner twice, plainly and under
    tracemalloc, and say what each took."""
    from app.extensions import db
    from app.models import Report
    from app.models.base import utcnow
    from app.services import reports

    directory = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    app = app_for(database_url, REPORTS_DIR=str(directory))
    result: dict = {"format": file_format}
    with app.app_context():
        for traced in (False, True):
            report = Report(kind="sales_by_event", format=file_format, params={},
                            status="pending", created_at=utcnow())  # fmt: skip
            db.session.add(report)
            db.session.commit()
            gc.collect()
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            if traced:
                tracemalloc.start()
            started = time.perf_counter()
            report = reports.generate_report(db.session, report.id, directory)
            elapsed = time.perf_counter() - started
            if traced:
                result["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 2)
                result["traced_s"] = round(elapsed, 2)
                tracemalloc.stop()
            else:
                rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                result.update(
                    seconds=round(elapsed, 2),
                    rows=report.row_count,
                    file_mb=round((directory / report.file_name).stat().st_size / 2**20, 2),
                    maxrss_mb=round(rss_after / 1024, 1),  # kilobytes on Linux
                    maxrss_growth_mb=round((rss_after - rss_before) / 1024, 1),
                )
            assert report.status == "done", report.error
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/bilheteria_bench_reports"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--per-order", type=int, default=2)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--measure", choices=["csv", "xlsx"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # the child process
        print(json.dumps(measure(args.database_url, args.measure)))
        return

    admin_url = args.database_url.rsplit("/", 1)[0] + "/postgres"
    db_name = args.database_url.rsplit("/", 1)[1]
    subprocess.run(["psql", admin_url, "-qc", f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"],
                   check=True)  # fmt: skip
    subprocess.run(["psql", admin_url, "-qc", f"CREATE DATABASE {db_name}"], check=True)
    results = {}
    for size in args.sizes:
        made = seed(args.database_url, size, args.per_order, args.events)
        print(f"{size} tickets: seeded {made}", flush=True)
        for file_format in ("csv", "xlsx"):
            child = subprocess.run(
                [sys.executable, __file__, "--database-url", args.database_url,
                 "--measure", file_format],
                check=True, capture_output=True, text=True, env={**os.environ, **QUIET},
            )  # fmt: skip
            run = json.loads(child.stdout.strip().splitlines()[-1])
            results[f"{file_format}_{size}"] = {**run, "tickets": made["ticket"]}
            print(f"  {file_format:4s} {run['rows']:7d} rows {run['file_mb']:6.2f} MB in"
                  f" {run['seconds']:6.2f} s: ru_maxrss {run['maxrss_mb']:6.1f} MB"
                  f" (+{run['maxrss_growth_mb']:.1f} MB while writing),"
                  f" tracemalloc peak {run['tracemalloc_peak_mb']:.2f} MB", flush=True)  # fmt: skip
    small, large = min(args.sizes), max(args.sizes)
    summary = {}
    for key, run in results.items():
        summary[f"{key}_tracemalloc_peak_mb"] = run["tracemalloc_peak_mb"]
        summary[f"{key}_maxrss_mb"] = run["maxrss_mb"]
    for file_format in ("csv", "xlsx"):
        summary[f"{file_format}_peak_ratio_{large}_vs_{small}"] = round(
            results[f"{file_format}_{large}"]["tracemalloc_peak_mb"]
            / results[f"{file_format}_{small}"]["tracemalloc_peak_mb"],
            2,
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
