"""How fast the outbox sender delivers: N mails through ``sender.send_due`` to a local SMTP server.

Writes N outbox rows of a small kind of its own (a subject, a text and an HTML part: the
sender's cost, not a PDF's), then delivers them to an aiosmtpd server in this process, three
ways: one sender; two senders at once as threads of one process; two senders as processes.
Prints mails per second and the time per mail, and checks that each mail arrived exactly once
(the claim's FOR UPDATE SKIP LOCKED under contention). Runs on its own database, dropped and
created. Not a test: run it by hand.

    .venv/bin/python bench/mail_send.py                 # 2000 mails per run
    .venv/bin/python bench/mail_send.py --mails 5000 --batch 50

Then, unless ``--confirmations 0``, the mail that costs most: order confirmations (``order_paid``:
the tickets' QR codes inline, their PDF and the calendar entry attached) of the demo's paid
orders, by one sender and by two processes, for the rate a real on-sale's mail runs at.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KIND = "bench_note"


class Counting:
    """The SMTP server's handler: the Message-ID of every mail accepted."""

    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        for line in envelope.content.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                with self.lock:
                    self.ids[line.split(b":", 1)[1].strip().decode()] += 1
                break
        return "250 OK"


def register_kind() -> None:
    from app.services.mail import messages

    @messages.renderer(KIND)
    def note(_session: Any, params: dict[str, Any]) -> messages.Message:
        n = params["n"]
        return messages.Message(
            subject=f"Bench note {n}",
            text=f"Hello,\n\nthis is bench note {n}.\n\n-- \nBilheteria\n",
            html=f"<p>Hello,</p><p>this is bench note <b>{n}</b>.</p><p>-- Bilheteria</p>",
        )


def make_app(database_url: str, smtp_port: int) -> Any:
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    from app import create_app

    register_kind()
    return create_app({"LOG_LEVEL": "WARNING", "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_port})


def write_mails(app: Any, count: int, run: str) -> None:
    """``count`` pending rows in one statement (as queue_many writes an event's mails)."""
    from sqlalchemy import insert

    from app.extensions import db
    from app.models import OutboxMail
    from app.models.base import utcnow

    now = utcnow()
    with app.app_context():
        db.session.execute(
            insert(OutboxMail),
            [
                {"key": f"bench:{run}:{n}", "kind": KIND, "to_address": f"buyer{n}@example.com",
                 "locale": "en", "params": {"n": n}, "status": "pending", "attempts": 0,
                 "next_attempt_at": now, "created_at": now}
                for n in range(count)
            ],
        )  # fmt: skip
        db.session.commit()


def write_confirmations(app: Any, count: int, run: str) -> int:
    """Order confirmations of up to ``count`` of the demo's paid orders (loaded once)."""
    from sqlalchemy import insert, select

    from app.extensions import db
    from app.models import Order, OrderStatus, OutboxMail
    from app.models.base import utcnow
    from app.services import demo

    now = utcnow()
    with app.app_context():
        if not demo.has_events(db.session):
            from app.views.roles import sync_permissions

            sync_permissions(app.appbuilder)  # the demo's users need their roles
            demo.load(db.session, app.appbuilder.sm)
        order_ids = db.session.scalars(
            select(Order.id).where(Order.status == OrderStatus.PAID).order_by(Order.id).limit(count)
        ).all()
        db.session.execute(
            insert(OutboxMail),
            [
                {"key": f"bench:{run}:{order_id}", "kind": "order_paid",
                 "to_address": f"buyer{order_id}@example.com", "locale": "pt_BR",
                 "params": {"order_id": order_id}, "status": "pending", "attempts": 0,
                 "next_attempt_at": now, "created_at": now}
                for order_id in order_ids
            ],
        )  # fmt: skip
        db.session.commit()
    return len(order_ids)


def sweep(app: Any, batch: int) -> int:
    """What one sender delivers until nothing is due."""
    from app.extensions import db
    from app.services.mail import sender

    sent = 0
    with app.app_context():
        try:
            while True:
                outcome = sender.send_due(db.session, limit=10_000, batch=batch)
                sent += len(outcome.sent)
                if not (outcome.sent or outcome.retried or outcome.failed):
                    return sent
        finally:
            db.session.remove()


def process_sender(database_url: str, port: int, batch: int, ready: Any, go: Any, out: Any) -> None:
    app = make_app(database_url, port)
    with app.app_context():  # connect and import before the clock starts
        from app.extensions import db

        db.session.execute(db.text("SELECT 1"))
        db.session.remove()
    ready.release()
    go.wait()
    out.put(sweep(app, batch))


def in_processes(
    database_url: str, port: int, batch: int, senders: int = 2
) -> tuple[list[int], float]:
    """``senders`` sender processes (each its own interpreter, as workers are), started and
    connected before the clock starts; what each sent, and the seconds until all were done."""
    context = multiprocessing.get_context("spawn")
    ready, go, out = context.Semaphore(0), context.Event(), context.Queue()
    workers = [
        context.Process(target=process_sender, args=(database_url, port, batch, ready, go, out))
        for _ in range(senders)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.acquire()
    started = time.perf_counter()
    go.set()
    counts = [out.get() for _ in workers]
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
    return counts, elapsed


def report(name: str, count: int, seconds: float, senders: int, box: Counting) -> None:
    received = sum(box.ids.values())
    twice = sum(1 for n in box.ids.values() if n > 1)
    print(
        f"{name:<28} {count:>6} mails in {seconds:6.2f} s: {count / seconds:7.0f} mails/s, "
        f"{seconds * 1000 / count * senders:5.2f} ms per mail per sender; "
        f"received {received}, sent twice {twice}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/bilheteria_bench_mail"
    )
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=20, help="rows claimed per SMTP connection")
    parser.add_argument(
        "--confirmations", type=int, default=200, help="order confirmations per run (0: none)"
    )
    args = parser.parse_args()
    admin_url, db_name = args.database_url.rsplit("/", 1)
    for sql in (f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)", f"CREATE DATABASE {db_name}"):
        subprocess.run(["psql", f"{admin_url}/postgres", "-qc", sql], check=True)

    from aiosmtpd.controller import Controller
    from common import fresh_schema

    box = Counting()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    app = make_app(args.database_url, port)
    with app.app_context():
        from app.extensions import db

        fresh_schema(db)
    print(f"{args.mails} mails per run, {args.batch} per connection, SMTP server in this process")
    try:
        # One sender.
        write_mails(app, args.mails, "one")
        started = time.perf_counter()
        sent = sweep(app, args.batch)
        report("one sender", sent, time.perf_counter() - started, 1, box)
        assert sent == args.mails, sent

        # Two senders, threads of this process.
        box.ids.clear()
        write_mails(app, args.mails, "threads")
        results: list[int] = []
        threads = [
            threading.Thread(target=lambda: results.append(sweep(app, args.batch)))
            for _ in range(2)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        report("two senders (threads)", sum(results), time.perf_counter() - started, 2, box)
        print(f"{'':<28} split {results}")
        assert sum(results) == args.mails and set(box.ids.values()) == {1}, results

        # Two senders, processes (each with its own interpreter, as two workers are).
        box.ids.clear()
        write_mails(app, args.mails, "processes")
        counts, elapsed = in_processes(args.database_url, port, args.batch)
        report("two senders (processes)", sum(counts), elapsed, 2, box)
        print(f"{'':<28} split {counts}")
        assert sum(counts) == args.mails and set(box.ids.values()) == {1}, counts

        if args.confirmations:
            box.ids.clear()
            count = write_confirmations(app, args.confirmations, "confirm-one")
            started = time.perf_counter()
            sent = sweep(app, args.batch)
            report("confirmations, one sender", sent, time.perf_counter() - started, 1, box)
            assert sent == count, (sent, count)

            box.ids.clear()
            count = write_confirmations(app, args.confirmations, "confirm-processes")
            counts, elapsed = in_processes(args.database_url, port, args.batch)
            report("confirmations, 2 processes", sum(counts), elapsed, 2, box)
            assert sum(counts) == count and set(box.ids.values()) == {1}, counts
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
