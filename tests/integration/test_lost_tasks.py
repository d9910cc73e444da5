"""A broker that loses a report's or a refund's task (issue 18, point 3): the beat's sweeps
(``reports.resend_lost``, ``refunds.resend_lost``, every minute) send it again once its work
has not begun LOST_TASK_GRACE_MINUTES after it was sent, and a task sent twice does its work
once: a report is written once, an order refunded once.

The lost message is lost for real: the app sends it to a Redis queue no worker reads and the
test deletes that queue (what a broker restarted without its data does); what the sweep sends
goes to a queue two real Celery workers read. The tests of the rules themselves (what is left
alone, two runs at once) run in this process on real PostgreSQL connections."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest.mock import ANY

import pytest
import redis
from flask import Flask, current_app
from sqlalchemy import func, select, update

from app import sim_acquirer
from app.extensions import db
from app.models import (
    Event,
    LedgerTransaction,
    Order,
    OrderStatus,
    Payment,
    Report,
    ReportKind,
    ReportStatus,
)
from app.models.base import utcnow
from app.services import customers, ledger, purchase, refunds, reports
from app.services import events as event_service
from app.services.payments import SimulatedGateway
from app.services.scoping import SYSTEM
from app.sim_acquirer.models import SimCharge, SimRefund
from app.tasks import celery
from tests.support.builders import make_event, make_partner, make_user
from tests.support.metrics import value
from tests.support.money import parse, records, transaction_sums
from tests.support.shop import buy
from tests.support.worker import Worker, needs_redis, wait_for

REPORT_TASK, REFUND_TASK = "reports.generate", "refunds.cancelled_event"
RESENT = "bilheteria_tasks_resent_total"
SUCCEEDED = r"Task {task}\[{id}\] succeeded in \S+: (?P<result>\S+)"
ORDERS = 40  # paid orders of the event two runs refund at once, one ticket each


@dataclass
class Broker:
    """Queues of the test's own: ``live``, which the test's workers read; ``lost`` and
    ``held``, which nobody reads."""

    client: redis.Redis
    live: str
    logs: Path
    reports_dir: Path
    workers: list[Worker] = field(default_factory=list)

    @property
    def lost(self) -> str:
        return f"{self.live}-lost"

    @property
    def held(self) -> str:
        return f"{self.live}-held"

    def start_workers(self, count: int) -> None:
        """``count`` ``celery worker`` processes on ``live``, one task at a time each. Each
        test starts its own: a worker keeps ledger account ids, which the tables emptied
        after a test no longer hold."""
        started = [
            Worker(self.live, "solo", self.logs / f"worker-{len(self.workers) + n}.log")
            for n in range(count)
        ]
        self.workers += started
        for worker in started:
            worker.wait_until_ready()

    def messages(self, queue: str) -> list[tuple[str, str, str]]:
        """(task, its arguments, its id) of each message waiting in ``queue``, oldest first."""
        waiting = [json.loads(raw)["headers"] for raw in self.client.lrange(queue, 0, -1)]
        return [(h["task"], h["argsrepr"], h["id"]) for h in reversed(waiting)]

    def succeeded(self, task: str, task_id: str) -> str | None:
        """What the workers logged the task run returned, once it succeeded."""
        pattern = re.compile(SUCCEEDED.format(task=re.escape(task), id=re.escape(task_id)))
        for worker in self.workers:
            found = pattern.search(worker.text())
            if found:
                return found["result"]
        return None


@pytest.fixture
def broker(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Broker]:
    """The test's queues and workers, which write reports where the test's app reads them;
    stopped and emptied afterwards."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    live = f"lost-tasks-{uuid.uuid4().hex[:10]}"
    reports_dir = tmp_path / "reports"
    monkeypatch.setenv("REPORTS_DIR", str(reports_dir))  # the workers read the environment
    monkeypatch.setitem(app.config, "REPORTS_DIR", str(reports_dir))
    (tmp_path / "logs").mkdir()
    broker = Broker(client, live, tmp_path / "logs", reports_dir)
    try:
        yield broker
    finally:
        for worker in broker.workers:
            worker.stop()
        for key in client.scan_iter(match=f"{live}*"):
            client.delete(key)
        for tag, raw in client.hgetall("unacked").items():
            if {live, broker.lost, broker.held} & set(json.loads(raw)[1:]):
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
        client.close()


@pytest.fixture
def reports_dir(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setitem(app.config, "REPORTS_DIR", str(tmp_path / "reports"))
    return tmp_path / "reports"


def route(monkeypatch: pytest.MonkeyPatch, queue: str) -> None:
    """From now on the report and refund tasks are sent to ``queue``."""
    for name in (REPORT_TASK, REFUND_TASK):
        task = celery.tasks[name]
        monkeypatch.setattr(task, "queue", queue, raising=False)
        monkeypatch.setattr(task, "_exec_options", None)  # Celery's copy of the task's options


def grace() -> dt.timedelta:
    return dt.timedelta(minutes=current_app.config["LOST_TASK_GRACE_MINUTES"])


def report_status(report_id: int) -> str:
    db.session.rollback()
    return db.session.scalar(select(Report.status).where(Report.id == report_id))


def sales_rows(report_id: int, directory: Path) -> list[dict[str, str]]:
    report = db.session.get(Report, report_id)
    return records(parse(reports.report_file(report, directory).read_bytes(), "csv"))


def request_sales_report() -> int:
    finance = make_user(f"fiona-{uuid.uuid4().hex[:6]}", "Finance")
    report = reports.request_report(db.session, finance, "sales_by_event", "csv", now=utcnow())
    return report.id


def event_with_paid_orders(orders: int) -> int:
    """A published event and ``orders`` paid orders of one ticket each, bought through the
    purchase services."""
    event = make_event(make_partner(f"Lost Fest {uuid.uuid4().hex[:4]}"), rows=("A", "D"), seats=10)
    event.publish()
    db.session.commit()
    customer = customers.sign_up(
        db.session,
        current_app.appbuilder.sm,
        "Buyer",
        f"{uuid.uuid4().hex[:8]}@example.com",
        "Ingresso-Azul-77",
    ).id
    gateway = SimulatedGateway()
    for spot in event.sections[0].spots[:orders]:
        hold = purchase.hold.reserve_spots(db.session, customer, event.id, spot_ids=[spot.id])
        token = sim_acquirer.tokenize(
            {"number": "4242424242424242", "exp_month": 12, "exp_year": utcnow().year + 1,
             "cvc": "123", "holder_name": "Buyer"}
        )["token"]  # fmt: skip
        purchase.checkout.checkout(db.session, gateway, customer, hold.id, token, uuid.uuid4().hex)
    return event.id


def paid_orders(event_id: int) -> int:
    db.session.rollback()
    return db.session.scalar(
        select(func.count()).where(Order.event_id == event_id, Order.status == OrderStatus.PAID)
    )


def assert_refunded_once(event_id: int, orders: int) -> None:
    """Every order refunded; each charge refunded by the acquirer once, in full; one refund
    transaction per payment; the books balance and the partner is back at zero."""
    db.session.rollback()
    payments = db.session.scalars(
        select(Payment).join(Order, Order.id == Payment.order_id).where(Order.event_id == event_id)
    ).all()
    assert len(payments) == orders
    assert {p.order.status for p in payments} == {OrderStatus.REFUNDED}
    charges = db.session.execute(
        select(SimCharge.amount_cents, SimCharge.refunded_cents, func.count(SimRefund.id))
        .join(SimRefund, SimRefund.charge_id == SimCharge.id, isouter=True)
        .where(SimCharge.id.in_([p.gateway_ref for p in payments]))
        .group_by(SimCharge.id)
    ).all()
    assert len(charges) == orders
    assert all(refunded == amount and count == 1 for amount, refunded, count in charges)
    refund_causes = db.session.scalars(
        select(LedgerTransaction.cause_key).where(
            LedgerTransaction.kind == "refund",
            LedgerTransaction.payment_id.in_([p.id for p in payments]),
        )
    ).all()
    assert sorted(refund_causes) == sorted(f"refund:payment:{p.id}" for p in payments)
    assert transaction_sums() == {0}
    partner = db.session.get(Event, event_id).partner
    assert ledger.partner_balance(db.session, partner, "BRL") == 0


# ---------------------------------------------------------------------------------------------
# reports


@needs_redis
def test_a_report_whose_task_the_broker_lost_is_sent_again_and_written(
    client, on_sale, broker, monkeypatch
):
    buy(client, on_sale, 2)
    route(monkeypatch, broker.lost)
    report_id = request_sales_report()
    assert broker.messages(broker.lost) == [(REPORT_TASK, f"({report_id},)", ANY)]
    broker.client.delete(broker.lost)  # the broker loses it
    assert report_status(report_id) == ReportStatus.PENDING
    route(monkeypatch, broker.live)
    broker.start_workers(1)
    before = value(client, RESENT, task=REPORT_TASK)

    # Younger than the grace period: its task may only be waiting in a busy queue.
    assert celery.tasks["reports.resend_lost"].apply().get() == []
    sent = db.session.get(Report, report_id).created_at
    assert reports.resend_lost(db.session, sent + grace() - dt.timedelta(seconds=1), grace()) == []
    assert report_status(report_id) == ReportStatus.PENDING

    later = sent + grace() + dt.timedelta(seconds=1)
    assert reports.resend_lost(db.session, later, grace()) == [report_id]
    assert reports.resend_lost(db.session, later, grace()) == []  # sent once per grace period
    wait_for(
        lambda: report_status(report_id) == ReportStatus.DONE, 60, "the report", *broker.workers
    )
    assert value(client, RESENT, task=REPORT_TASK) == before + 1
    total = sales_rows(report_id, broker.reports_dir)[-1]
    assert total["line"] == "total" and total["tickets"] == "2"
    # Written: nothing to send any more, however late.
    assert reports.resend_lost(db.session, later + 10 * grace(), grace()) == []


def test_two_runs_of_a_reports_task_at_once_write_it_once(
    app, client, on_sale, reports_dir, monkeypatch
):
    """The original task delivered late, while the one the sweep sent is writing the report:
    the second run finds the report's row held by the first and leaves it to it."""
    buy(client, on_sale, 1)
    monkeypatch.setattr(reports, "enqueue", lambda *args: None)  # the task waits in a queue
    report_id = request_sales_report()
    built: list[int] = []
    writing, go_on = threading.Event(), threading.Event()
    real = reports.BUILDERS[ReportKind.SALES]

    def slow_sales(*args):
        built.append(report_id)
        writing.set()
        assert go_on.wait(30)
        return real(*args)

    monkeypatch.setitem(reports.BUILDERS, ReportKind.SALES, slow_sales)
    task = celery.tasks[REPORT_TASK]
    first: list[str] = []

    def write() -> None:
        # In this app (its REPORTS_DIR): a thread without an app context would run the task in
        # the first app the process made, another test's in a whole run.
        with app.app_context():
            first.append(task.apply(args=[report_id]).get())

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert writing.wait(30)
        # A second run at the same time: it returns at once, without writing.
        assert task.apply(args=[report_id]).get() == ReportStatus.RUNNING
        # Nor does the sweep send it again while it is written, however long that takes.
        assert reports.resend_lost(db.session, utcnow() + 10 * grace(), grace()) == []
    finally:
        go_on.set()
        writer.join(30)
    assert first == [ReportStatus.DONE] and built == [report_id]
    assert task.apply(args=[report_id]).get() == ReportStatus.DONE  # a third, late: nothing
    assert built == [report_id]
    assert sales_rows(report_id, reports_dir)[-1]["tickets"] == "1"


@pytest.mark.usefixtures("tasks_in_process")
def test_a_report_a_dead_worker_left_running_is_sent_again_once_its_row_is_free(
    client, on_sale, reports_dir, monkeypatch
):
    buy(client, on_sale, 1)
    monkeypatch.setattr(reports, "enqueue", lambda *args: None)
    report_id = request_sales_report()
    long_ago = utcnow() - 3 * grace()
    db.session.execute(
        update(Report)
        .where(Report.id == report_id)
        .values(status=ReportStatus.RUNNING.value, started_at=long_ago, created_at=long_ago)
    )
    db.session.commit()
    before = value(client, RESENT, task=REPORT_TASK)
    # Its writer at work, on a connection of its own, holds the report's row: left alone.
    with db.engine.connect() as writer:
        writer.execute(select(Report.id).where(Report.id == report_id).with_for_update())
        assert reports.resend_lost(db.session, utcnow(), grace()) == []
        assert celery.tasks[REPORT_TASK].apply(args=[report_id]).get() == ReportStatus.RUNNING
        writer.rollback()
    assert report_status(report_id) == ReportStatus.RUNNING
    # The writer died (its connection with it): its report is sent again and written.
    assert reports.resend_lost(db.session, utcnow(), grace()) == [report_id]
    assert report_status(report_id) == ReportStatus.DONE
    assert value(client, RESENT, task=REPORT_TASK) == before + 1
    assert sales_rows(report_id, reports_dir)[-1]["tickets"] == "1"


# ---------------------------------------------------------------------------------------------
# refunds of a cancelled event


@needs_redis
def test_a_refund_task_the_broker_lost_is_sent_again_and_refunds_each_order_once(
    client, broker, monkeypatch
):
    orders = 10
    event_id = event_with_paid_orders(orders)
    route(monkeypatch, broker.lost)
    event_service.cancel_event(db.session, event_id, SYSTEM, "Storm")
    assert broker.messages(broker.lost) == [(REFUND_TASK, f"({event_id},)", ANY)]
    broker.client.delete(broker.lost)  # the broker loses it
    route(monkeypatch, broker.live)
    broker.start_workers(1)
    before = value(client, RESENT, task=REFUND_TASK)

    assert celery.tasks["refunds.resend_lost"].apply().get() == []  # too young to be lost
    sent = db.session.get(Event, event_id).cancelled_at
    assert refunds.resend_lost(db.session, sent + grace() - dt.timedelta(seconds=1), grace()) == []
    assert paid_orders(event_id) == orders

    later = sent + grace() + dt.timedelta(seconds=1)
    assert refunds.resend_lost(db.session, later, grace()) == [event_id]
    assert refunds.resend_lost(db.session, later, grace()) == []  # sent once per grace period
    wait_for(lambda: paid_orders(event_id) == 0, 60, "the refunds", *broker.workers)
    assert value(client, RESENT, task=REFUND_TASK) == before + 1
    assert_refunded_once(event_id, orders)
    assert refunds.resend_lost(db.session, later + 10 * grace(), grace()) == []  # none paid


@needs_redis
def test_the_late_original_and_the_resent_refund_task_at_once_refund_each_order_once(
    broker, monkeypatch
):
    """The original task was not lost, only late (its queue backed up past the grace period):
    it and the one the sweep sent are taken by two workers at the same time."""
    event_id = event_with_paid_orders(ORDERS)
    route(monkeypatch, broker.held)
    event_service.cancel_event(db.session, event_id, SYSTEM, "Storm")
    assert refunds.resend_lost(db.session, utcnow() + grace() * 2, grace()) == [event_id]
    sent = broker.messages(broker.held)
    assert [(task, args) for task, args, _ in sent] == [(REFUND_TASK, f"({event_id},)")] * 2
    broker.start_workers(2)
    # Both at once to the workers, one each.
    with broker.client.pipeline() as both:
        for _ in sent:
            both.rpoplpush(broker.held, broker.live)
        both.execute()
    ids = [task_id for _, _, task_id in sent]
    wait_for(
        lambda: all(broker.succeeded(REFUND_TASK, task_id) for task_id in ids),
        60,
        "both refund tasks",
        *broker.workers,
    )
    # Each went through the orders (a run counts those it found refunded by the other too);
    # the card of each was refunded once, the books post each refund once.
    assert all(0 < int(broker.succeeded(REFUND_TASK, task_id)) <= ORDERS for task_id in ids)
    assert_refunded_once(event_id, ORDERS)


@pytest.mark.usefixtures("tasks_in_process")
def test_a_refund_run_seen_since_its_task_was_sent_is_left_alone_until_it_has_stalled(
    client, monkeypatch
):
    """A run that left an order paid (the processor refused it) was not lost: the sweep sends
    nothing while the task may still be retrying, and sends it again once it has stopped for an
    hour; the order is then refunded once."""
    event_id = event_with_paid_orders(3)
    dropped = []
    monkeypatch.setattr(event_service, "enqueue", lambda *args: dropped.append(args))
    event_service.cancel_event(db.session, event_id, SYSTEM, "Storm")
    assert [args[1:] for args in dropped] == [(REFUND_TASK, event_id)]  # the message is lost
    monkeypatch.undo()
    refused = db.session.scalars(
        select(Payment.gateway_ref)
        .join(Order, Order.id == Payment.order_id)
        .where(Order.event_id == event_id)
        .order_by(Payment.id)
    ).first()
    real_refund = SimulatedGateway.refund

    def refuse_one(self, reference, amount, key=None):
        return False if reference == refused else real_refund(self, reference, amount, key)

    monkeypatch.setattr(SimulatedGateway, "refund", refuse_one)
    assert celery.tasks[REFUND_TASK].apply(args=[event_id]).get() == 2
    monkeypatch.undo()
    assert paid_orders(event_id) == 1
    ran = utcnow()
    assert refunds.resend_lost(db.session, ran + grace() * 2, grace()) == []
    assert refunds.resend_lost(db.session, ran + refunds.REFUND_RUN_STALLED / 2, grace()) == []
    stalled = ran + refunds.REFUND_RUN_STALLED + dt.timedelta(seconds=1)
    assert refunds.resend_lost(db.session, stalled, grace()) == [event_id]
    assert paid_orders(event_id) == 0
    assert_refunded_once(event_id, 3)


def test_the_sweeps_run_every_minute_in_the_beat_schedule():
    schedule = {entry["task"]: entry["schedule"] for entry in celery.conf.beat_schedule.values()}
    assert schedule["reports.resend_lost"] == schedule["refunds.resend_lost"] == 60.0
