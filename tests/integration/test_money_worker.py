"""A real Celery worker is killed in the middle of a money task's batch (issue 4, point 4): the
task (acks_late, reject_on_worker_lost) is delivered again, and once it finishes every posting
exists exactly once. Needs PostgreSQL and Redis.

Two ways a worker dies:

- the whole worker (``--pool solo``) is killed and a new one started: nobody acknowledged the
  message (acks_late), so the broker gives it to the new worker once its visibility timeout has
  passed (set short here: see REDELIVERY);
- the pool process running the task is killed (``--pool prefork``, the app's own broker
  settings): the worker rejects the message back to the queue as soon as it sees the process
  gone (reject_on_worker_lost) and a new pool process runs it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import func, select

from app import sim_acquirer
from app.extensions import db
from app.models import (
    Event,
    LedgerEntry,
    LedgerTransaction,
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    TicketStatus,
)
from app.models.base import utcnow
from app.services import customers, ledger, purchase
from app.services.payments import SimulatedGateway
from app.sim_acquirer.models import SimCharge, SimRefund
from tests.conftest import database_url_for_tests
from tests.support import make_event, make_partner

REDIS_URL = os.environ.get("REDIS_URL")

needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs Redis; set REDIS_URL")

ROOT = Path(__file__).resolve().parents[2]
TASK = "refunds.cancelled_event"
ORDERS = 120  # paid orders of the cancelled event: the task refunds them 50 at a time
# The Redis transport hands an unacknowledged message to another worker once it is older than
# ``visibility_timeout`` (kombu's default: an hour), checked every ``unacked_restore_interval``
# seconds (x ``unacked_restore_throttle``, 10 x 10 s by default). The app does not set them
# (app/tasks/__init__.py): a worker killed outright has its task redelivered after an hour. The
# restarted-worker test runs its workers with these, on top of the app's configuration.
REDELIVERY = {
    "visibility_timeout": 5,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
    "unacked_mutex_expire": 10,
}
# ``python -c LAUNCHER <celery arguments>``: the ``celery`` command on ``app.tasks.worker``, the
# test's broker transport options (if any) over the app's, printed for the test to read.
LAUNCHER = """
import json, os, sys
from celery.bin.celery import main
from app.tasks.worker import celery
options = dict(celery.conf.broker_transport_options or {})
options.update(json.loads(os.environ["TEST_BROKER_TRANSPORT_OPTIONS"]))
celery.conf.broker_transport_options = options
print("broker_transport_options:", json.dumps(options), file=sys.stderr, flush=True)
sys.exit(main())
"""
DONE = re.compile(rf"Task {re.escape(TASK)}\[(?P<id>[^\]]+)\] succeeded in \S+: (?P<result>\d+)")


class Worker:
    """One ``celery worker`` process on the test's own queue, its log in a file."""

    def __init__(
        self, queue: str, pool: str, log: Path, transport_options: dict | None = None
    ) -> None:
        self.log = log
        env = {
            **os.environ,
            "DATABASE_URL": database_url_for_tests(),
            "REDIS_URL": REDIS_URL or "",
            "FAB_UPDATE_PERMS": "false",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "LOG_JSON": "false",
            "TEST_BROKER_TRANSPORT_OPTIONS": json.dumps(transport_options or {}),
        }
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-c", LAUNCHER,
                    "-A", "app.tasks.worker", "worker",
                    "--concurrency", "1", "--pool", pool, "-Q", queue,
                    "--loglevel", "INFO", "-n", f"{queue}-{log.stem}@%h",
                    "--without-mingle", "--without-gossip", "--without-heartbeat",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def transport_options(self) -> dict:
        """The broker transport options the worker runs with (the launcher prints them)."""
        line = re.search(r"^broker_transport_options: (.*)$", self.text(), re.MULTILINE)
        assert line, self.text()[-3000:]
        return json.loads(line[1])

    def wait_until_ready(self, timeout: float = 30) -> None:
        wait_for(lambda: " ready." in self.text(), timeout, "the worker to start", self)

    def pool_process(self) -> int:
        """The pid of the (single) prefork pool process."""
        children = [
            int(stat.split()[0])
            for stat in _proc_stats()
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid
        ]
        assert len(children) == 1, children
        return children[0]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def _proc_stats() -> list[str]:
    stats = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats.append((entry / "stat").read_text())
            except OSError:  # gone meanwhile
                continue
    return stats


def wait_for(condition, timeout: float, what: str, *workers: Worker) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.log.name}\n{w.text()[-3000:]}" for w in workers)
            pytest.fail(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.02)


def refunded_orders(event_id: int) -> int:
    db.session.rollback()
    return db.session.scalar(
        select(func.count()).where(Order.event_id == event_id, Order.status == OrderStatus.REFUNDED)
    )


def acquirer_refunds(event_id: int) -> int:
    db.session.rollback()
    return db.session.scalar(
        select(func.count())
        .select_from(SimRefund)
        .join(Payment, Payment.gateway_ref == SimRefund.charge_id)
        .join(Order, Order.id == Payment.order_id)
        .where(Order.event_id == event_id)
    )


@pytest.fixture
def broker(request):
    """A Redis client on the test's broker database, and a queue of the test's own, removed
    afterwards with anything of it the broker still holds."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    queue = f"money-test-{uuid.uuid4().hex[:10]}"
    yield client, queue
    for pattern in (f"{queue}*", f"_kombu.binding*.{queue}"):  # its lists and bindings
        for key in client.scan_iter(match=pattern):
            client.delete(key)
    for tag, raw in client.hgetall("unacked").items():
        if queue in json.loads(raw)[1:]:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
    client.close()


def unacked(client, queue: str) -> list[str]:
    """Task ids of the queue's messages delivered and not acknowledged."""
    ids = []
    for raw in client.hvals("unacked"):
        message, exchange, routing_key = json.loads(raw)
        if queue in (exchange, routing_key):
            ids.append(message["headers"]["id"])
    return ids


def send(queue: str, event_id: int) -> str:
    producer = Celery("money-test", broker=REDIS_URL)
    try:
        return producer.send_task(TASK, args=[event_id], queue=queue).id
    finally:
        producer.close()


@pytest.fixture
def cancelled_event():
    """A cancelled event with ORDERS paid orders of one ticket each (its refunds not started)."""
    event = make_event(make_partner("Worker Fest"), rows=("A", "L"), seats=10)
    event.publish()
    db.session.commit()
    customer = customers.sign_up(
        db.session, _sm(), "Buyer", f"{uuid.uuid4().hex[:8]}@example.com", "s3cret-pass"
    ).id
    gateway = SimulatedGateway()
    for spot in event.sections[0].spots[:ORDERS]:
        hold = purchase.hold.reserve_spots(db.session, customer, event.id, spot_ids=[spot.id])
        token = sim_acquirer.tokenize(
            {"number": "4242424242424242", "exp_month": 12, "exp_year": utcnow().year + 1,
             "cvc": "123", "holder_name": "Buyer"}
        )["token"]  # fmt: skip
        purchase.checkout.checkout(db.session, gateway, customer, hold.id, token, uuid.uuid4().hex)
    event = db.session.get(Event, event.id)
    event.cancel("Storm")  # without the service: its own refund task must not run meanwhile
    db.session.commit()
    assert refunded_orders(event.id) == 0
    return event.id


def _sm():
    from flask import current_app

    return current_app.appbuilder.sm


def assert_every_posting_once(event_id: int) -> None:
    db.session.rollback()
    orders = db.session.scalars(select(Order).where(Order.event_id == event_id)).all()
    assert len(orders) == ORDERS
    assert {o.status for o in orders} == {OrderStatus.REFUNDED}
    assert {t.status for o in orders for t in o.tickets} == {TicketStatus.REVOKED}
    payments = [p for o in orders for p in o.payments]
    assert len(payments) == ORDERS and {p.status for p in payments} == {PaymentStatus.REFUNDED}
    # One refund transaction per paid order, named after its payment.
    refunds = db.session.execute(
        select(LedgerTransaction.payment_id, LedgerTransaction.cause_key).where(
            LedgerTransaction.kind == "refund"
        )
    ).all()
    assert sorted(refunds) == sorted((p.id, f"refund:payment:{p.id}") for p in payments)
    # The acquirer refunded each charge once, in full.
    charges = db.session.execute(
        select(SimCharge.amount_cents, SimCharge.refunded_cents, func.count(SimRefund.id))
        .join(SimRefund, SimRefund.charge_id == SimCharge.id, isouter=True)
        .where(SimCharge.id.in_([p.gateway_ref for p in payments]))
        .group_by(SimCharge.id)
    ).all()
    assert len(charges) == ORDERS
    assert all(refunded == amount and count == 1 for amount, refunded, count in charges)
    # Every transaction balances; the refunds gave the sales back entirely.
    sums = db.session.execute(
        select(func.sum(LedgerEntry.amount_cents)).group_by(
            LedgerEntry.transaction_id, LedgerEntry.currency
        )
    ).scalars()
    assert set(sums) == {0}
    partner = db.session.get(Event, event_id).partner
    assert ledger.partner_balance(db.session, partner, "BRL") == 0
    assert ledger.balance(db.session, ledger.account_id(db.session, ledger.CLEARING), "BRL") == 0
    kinds = dict(
        db.session.execute(
            select(LedgerTransaction.kind, func.count()).group_by(LedgerTransaction.kind)
        ).all()
    )
    assert kinds == {"capture": ORDERS, "refund": ORDERS}


def kill_mid_batch(event_id: int, kill, *workers: Worker) -> None:
    """Wait until some but not all orders are refunded, then kill."""
    wait_for(lambda: refunded_orders(event_id) >= 5, 30, "the first refunds", *workers)
    kill()


@needs_redis
def test_a_killed_worker_leaves_the_task_to_a_new_worker_which_posts_nothing_twice(
    cancelled_event, broker, tmp_path
):
    client, queue = broker
    first = Worker(queue, "solo", tmp_path / "first.log", REDELIVERY)
    second = None
    try:
        first.wait_until_ready()
        assert first.transport_options()["visibility_timeout"] == REDELIVERY["visibility_timeout"]
        task_id = send(queue, cancelled_event)
        kill_mid_batch(cancelled_event, first.kill, first)
        assert first.process.returncode == -signal.SIGKILL
        time.sleep(0.5)  # a commit the dead worker had sent lands
        done = refunded_orders(cancelled_event)
        assert 0 < done < ORDERS, f"killed too late: {done} of {ORDERS} orders refunded"
        # The acquirer may have refunded one more charge, whose order the kill left paid.
        assert acquirer_refunds(cancelled_event) in (done, done + 1)
        # acks_late: the killed worker never acknowledged the message; the broker still holds
        # it, delivered and unacknowledged, and nothing runs it while no worker is up.
        assert unacked(client, queue) == [task_id]
        time.sleep(0.5)
        assert refunded_orders(cancelled_event) == done

        second = Worker(queue, "solo", tmp_path / "second.log", REDELIVERY)
        wait_for(lambda: DONE.search(second.text()), 60, "the redelivered task", first, second)
        finished = DONE.search(second.text())
        assert finished["id"] == task_id
        # The new worker refunded exactly the orders the killed one had not.
        assert int(finished["result"]) == ORDERS - done
        wait_for(lambda: not unacked(client, queue), 10, "the acknowledgement", second)
        assert_every_posting_once(cancelled_event)
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()


@needs_redis
def test_a_killed_pool_process_has_its_task_requeued_at_once_and_posts_nothing_twice(
    cancelled_event, broker, tmp_path
):
    client, queue = broker
    # The app's own broker settings: with kombu's hour-long visibility timeout, only the
    # worker's reject can put the message back within this test.
    worker = Worker(queue, "prefork", tmp_path / "prefork.log")
    try:
        worker.wait_until_ready()
        assert worker.transport_options().get("visibility_timeout", 3600) > 60
        child = worker.pool_process()
        task_id = send(queue, cancelled_event)

        def kill_the_pool_process() -> None:
            os.kill(child, signal.SIGKILL)

        kill_mid_batch(cancelled_event, kill_the_pool_process, worker)
        # Counted at once: the new pool process may start soon (so a commit the dead one had
        # sent may land after this count, and the new one then has one order fewer to do).
        done = refunded_orders(cancelled_event)
        assert 0 < done < ORDERS, f"killed too late: {done} of {ORDERS} orders refunded"
        # reject_on_worker_lost: the worker puts the message back as soon as it sees its pool
        # process gone (long before the visibility timeout) and a new pool process runs it.
        wait_for(lambda: DONE.search(worker.text()), 30, "the requeued task", worker)
        log = worker.text()
        assert "WorkerLostError" in log or "SIGKILL" in log
        finished = DONE.search(log)
        assert finished["id"] == task_id
        assert 0 < int(finished["result"]) <= ORDERS - done
        assert worker.pool_process() != child
        wait_for(lambda: not unacked(client, queue), 10, "the acknowledgement", worker)
        assert_every_posting_once(cancelled_event)
    finally:
        worker.stop()


def test_the_money_tasks_are_acknowledged_late_and_rejected_when_their_worker_is_lost():
    from app.tasks import celery

    for name in (TASK, "money.reconcile_settlements", "money.create_payouts"):
        task = celery.tasks[name]
        assert task.acks_late and task.reject_on_worker_lost, name
    assert celery.conf.worker_prefetch_multiplier == 1


def test_a_dead_workers_task_is_redelivered_within_the_configured_visibility_timeout(app):
    """Without it Redis waits an hour before handing a killed worker's task to another."""
    from app.tasks import celery

    options = celery.conf.broker_transport_options
    assert options["visibility_timeout"] == app.config["CELERY_VISIBILITY_TIMEOUT"] <= 3600
