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
import time
import uuid

import pytest
from celery import Celery
from sqlalchemy import func, select

from app import sim_acquirer
from app.extensions import db
from app.models import (
    Event,
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
from tests.support.builders import make_event, make_partner
from tests.support.money import transaction_sums
from tests.support.worker import Worker, needs_redis, wait_for

REDIS_URL = os.environ.get("REDIS_URL")
TASK = "refunds.cancelled_event"
ORDERS = 120  # paid orders of the cancelled event: the task refunds them 50 at a time
# The Redis transport hands an unacknowledged message to another worker once it is older than
# ``visibility_timeout`` (kombu's default: an hour), checked every ``unacked_restore_interval``
# seconds (x ``unacked_restore_throttle``, 10 x 10 s by default). The app sets a visibility timeout
# of CELERY_VISIBILITY_TIMEOUT (at least a minute) and a look every 10 s (app/tasks/__init__.py).
# The restarted-worker test runs its workers with these, on top of the app's configuration.
REDELIVERY = {
    "visibility_timeout": 5,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
    "unacked_mutex_expire": 10,
}
DONE = re.compile(rf"Task {re.escape(TASK)}\[(?P<id>[^\]]+)\] succeeded in \S+: (?P<result>\d+)")


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
        db.session, _sm(), "Buyer", f"{uuid.uuid4().hex[:8]}@example.com", "Ingresso-Azul-77"
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
    assert transaction_sums() == {0}
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
    # Looked for every 10 s, not every 100 s (kombu scans on every unacked_restore_throttle-th
    # look only, 10 unless set).
    assert options["unacked_restore_interval"] * options.get("unacked_restore_throttle", 10) <= 10
