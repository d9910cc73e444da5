"""Issue 18, point 3: kill -9 the Celery workers in the middle of a settlement run, a payout run
and a cancelled event's refund batch, all three at once. Every task is acknowledged late: the
broker hands it out again once its visibility timeout (a minute here) has passed, to the workers
started again as their supervisor would; the redelivered runs finish what was left. Nothing is
settled, paid out or refunded twice, and every ledger transaction balances.

The settlement and payout runs are over in milliseconds: each stops a while at a failpoint after
its first day or payout is committed (app/failpoints.py, armed here once the data is ready) and
is killed there. The refund batch needs none: it is killed once some orders are refunded and
one is caught in the middle of its refund (recorded, the acquirer asked, not booked yet), the
moment when asking the acquirer again with a new key would refund the card twice.

Which worker holds each task is read in the workers' logs; as a worker takes at most two tasks
(two pool processes, prefetch 1), the three tasks always take both: both are killed."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.failpoints import DIR_ENV
from app.models.base import utcnow
from tests.support.cluster_money import (
    available,
    cancel,
    days_reconciled,
    log_sizes,
    move_to_days_ago,
    orders_refunded,
    payout_losses,
    payouts_made,
    refund_losses,
    refund_progress,
    sell,
    send,
    settle_days,
    settlement_losses,
    task_lines,
    unbalanced_transactions,
)

pytestmark = pytest.mark.cluster

SETTLE = "money.reconcile_settlements"
PAYOUTS = "money.create_payouts"
REFUNDS = "refunds.cancelled_event"
# Settlement: partners selling on each of the last SETTLEMENT_DAYS days, ORDERS_A_DAY orders a
# day each, with a payout reserve of 100 % (so that the payout run, which runs at the same time,
# never pays their newly settled money: what it owes is known before it starts).
SETTLEMENT_PARTNERS = 2
SETTLEMENT_DAYS = 6
ORDERS_A_DAY = 2
# Payouts: partners whose sales of the two days before those were settled before the run.
PAYOUT_PARTNERS = 3
PAYOUT_ORDERS = 2
REFUND_ORDERS = 80
REDELIVERY_SECONDS = 150  # the visibility timeout (60 s) + the restore interval, with room


def test_workers_killed_mid_settlement_payouts_and_refunds_do_nothing_twice(
    whole_cluster, cluster_db
):
    cluster = whole_cluster
    started = time.monotonic()
    today = utcnow().date()
    days = [today - dt.timedelta(days=n) for n in range(SETTLEMENT_DAYS, 0, -1)]
    settling = [sell(cluster_db, f"Settles {n}", SETTLEMENT_DAYS * ORDERS_A_DAY,
                     reserve_percent=100) for n in range(SETTLEMENT_PARTNERS)]  # fmt: skip
    paying = [sell(cluster_db, f"Paid out {n}", PAYOUT_ORDERS) for n in range(PAYOUT_PARTNERS)]
    refunding = sell(cluster_db, "Cancelled", REFUND_ORDERS)
    by_day: dict[int, list[int]] = {}
    for sales in settling:
        for n, payment in enumerate(sales.payment_ids):
            by_day.setdefault(SETTLEMENT_DAYS - n // ORDERS_A_DAY, []).append(payment)
    for sales in paying:
        for n, payment in enumerate(sales.payment_ids):
            by_day.setdefault(SETTLEMENT_DAYS + 1 + n % 2, []).append(payment)
    move_to_days_ago(cluster_db, by_day)
    # The days before the settlement run's, from the day before the first capture.
    settle_days(cluster_db, [today - dt.timedelta(days=SETTLEMENT_DAYS + n) for n in (3, 2, 1)])
    owed = available(cluster_db, [sales.partner_id for sales in paying])
    assert all(owed.values()), owed
    settled_payments = [p for sales in settling for p in sales.payment_ids]
    payout_partners = list(owed)

    seeded_in = time.monotonic() - started
    armed = Path(cluster.extra_env[DIR_ENV])
    armed.mkdir()
    since = log_sizes(cluster)
    sent = {SETTLE: send(cluster_db, SETTLE), PAYOUTS: send(cluster_db, PAYOUTS)}
    wait(lambda: all((armed / n).exists() for n in ("settlement.after_day",
                                                      "payouts.after_payout")),
         60, "the settlement and payout runs to stop at their failpoints")  # fmt: skip
    cancel(cluster_db, refunding.event_id)
    # Some orders refunded, and one in the middle of its refund: recorded, the acquirer being
    # asked or its answer being booked (or, failing that, half of them refunded).
    wait(lambda: refund_under_way(refund_progress(cluster_db, refunding.event_id)), 60,
         "the refund batch to be under way", pause=0.002)  # fmt: skip

    # Which worker holds each task: the one that logged receiving it (its pool process stopped
    # at a failpoint is one of that worker's process group).
    refund_tasks = list(task_lines(cluster, since, REFUNDS, "received"))
    assert len(refund_tasks) == 1, refund_tasks
    sent[REFUNDS] = refund_tasks[0]
    holders = {task: task_lines(cluster, since, task, "received")[task_id]
               for task, task_id in sent.items()}  # fmt: skip
    for point, task in (("settlement.after_day", SETTLE), ("payouts.after_payout", PAYOUTS)):
        pid = int((armed / point).read_text())
        assert os.getpgid(pid) == cluster.parts[holders[task]].pid, (point, holders)
    killed = sorted(set(holders.values()))
    for name in killed:
        cluster.signal_part(name, signal.SIGKILL)
    killed_at = time.monotonic()
    wait(lambda: not any(cluster.is_running(name) for name in killed), 10, "the workers to die")
    time.sleep(0.5)  # a commit a dead process had sent lands
    before = {
        "days": days_reconciled(cluster_db, days),
        "payouts": payouts_made(cluster_db, payout_partners),
        "refunds": orders_refunded(cluster_db, refunding.event_id),
    }
    half_done = refund_progress(cluster_db, refunding.event_id)
    del half_done["refunded"]
    for name in killed:  # as their supervisor would
        cluster.start_part(name)

    def finished() -> bool:
        return all(
            task_id in task_lines(cluster, since, task, "succeeded")
            for task, task_id in sent.items()
        )

    wait(finished, REDELIVERY_SECONDS, "the redelivered tasks to finish")
    redelivered_in = time.monotonic() - killed_at
    after = {
        "days": days_reconciled(cluster_db, days),
        "payouts": payouts_made(cluster_db, payout_partners),
        "refunds": orders_refunded(cluster_db, refunding.event_id),
    }
    counted = {
        **settlement_losses(cluster_db, days, settled_payments),
        **payout_losses(cluster_db, owed),
        **refund_losses(cluster_db, refunding.event_id),
        "unbalanced_transactions": unbalanced_transactions(cluster_db),
    }
    print(f"\nseeded in {seeded_in:.0f} s; killed {killed} holding {holders}; done before "
          f"the kill: {before['days']}/{SETTLEMENT_DAYS} days settled, {before['payouts']}/"
          f"{PAYOUT_PARTNERS} payouts, {before['refunds']}/{REFUND_ORDERS} orders refunded "
          f"({half_done}); after the redelivery ({redelivered_in:.0f} s): {after}; "
          f"losses: {counted}")  # fmt: skip
    assert counted == dict.fromkeys(counted, 0)
    # Killed in the middle of each batch, and each finished by the same task delivered again.
    assert 0 < before["days"] < SETTLEMENT_DAYS
    assert 0 < before["payouts"] < PAYOUT_PARTNERS
    assert 0 < before["refunds"] < REFUND_ORDERS
    assert after == {"days": SETTLEMENT_DAYS, "payouts": PAYOUT_PARTNERS,
                     "refunds": REFUND_ORDERS}  # fmt: skip


def refund_under_way(progress: dict[str, int]) -> bool:
    refunded = progress["refunded"]
    return (refunded >= REFUND_ORDERS // 8 and progress["pending"] > 0) or (
        refunded >= REFUND_ORDERS // 2
    )


def wait(condition: Callable[[], object], timeout: float, what: str, pause: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(pause)
