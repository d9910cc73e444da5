"""End to end (issue 4, point 7): a day of sales goes through a real Celery worker, on Redis and
PostgreSQL, to a paid payout and a partner statement that matches the ledger to the cent.

Customers buy through the API and one cancels; that day is then over (``happened_days_ago``).
The worker reconciles the acquirer's report and creates the payout (both sent by name, as beat
would); finance approves it and marks it paid in the dashboard; the partner requests its
statements in the dashboard, the web app enqueues them on Redis, the worker writes them, and the
partner downloads them. The worker has a queue of its own (``Worker`` from tests/support/worker.py).
"""

from __future__ import annotations

import ast
import datetime as dt
import os
import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    LedgerTransaction,
    Payout,
    PayoutStatus,
    Report,
    ReportStatus,
    Settlement,
    SettlementMismatch,
)
from app.models.base import utcnow
from app.services import ledger
from app.sim_acquirer.api import acquirer_fee
from app.tasks import celery
from tests.support.builders import login, make_event, make_partner, make_user
from tests.support.money import (
    balance,
    cents,
    happened_days_ago,
    parse,
    posted_days_ago,
    records,
)
from tests.support.shop import buy, payment_figures, sign_up
from tests.support.worker import Worker, needs_redis, wait_for

ACQUIRER_FEE = (Decimal("2.5"), 30)  # the worker's simulated acquirer: 2.5 % + BRL 0.30
TIMEOUT = 30  # seconds for the worker to start or finish one task
BANK_REFERENCE = "TED E2E-0001"


@pytest.fixture
def worker(app, broker, tmp_path, monkeypatch):
    """A real worker on the test's own queue, started at once (it boots while the test buys),
    and the web app set to enqueue on that queue in Redis instead of running tasks in-process;
    both write and read report files in one directory. The worker is stopped (SIGTERM, then
    SIGKILL) whatever happens; the broker fixture removes the queue's keys."""
    client, queue = broker
    reports_dir = tmp_path / "reports"
    for key, value in (
        ("REPORTS_DIR", str(reports_dir)),
        ("SIM_ACQUIRER_FEE_PERCENT", str(ACQUIRER_FEE[0])),
        ("SIM_ACQUIRER_FEE_FIXED_CENTS", str(ACQUIRER_FEE[1])),
        ("REFUND_RETURNS_PLATFORM_FEE", "true"),
    ):
        monkeypatch.setenv(key, value)  # the worker's environment (Worker copies os.environ)
    monkeypatch.setitem(app.config, "REPORTS_DIR", str(reports_dir))
    monkeypatch.setitem(app.config, "REFUND_RETURNS_PLATFORM_FEE", True)
    # The Celery app is shared with the suite's Flask app (which may run tasks eagerly); its
    # settings are put back afterwards (monkeypatch cannot restore a default Celery setting).
    routing = {
        "task_always_eager": False,
        "broker_url": os.environ["REDIS_URL"],
        "task_default_queue": queue,
    }
    saved = {key: getattr(celery.conf, key) for key in routing}
    celery.conf.update(routing)
    process = Worker(queue, "solo", tmp_path / "worker.log")
    try:
        yield process, queue
    finally:
        process.stop()
        celery.conf.update(saved)
        # Its remote-control binding (the worker's node name carries the queue's name), and
        # kombu's expiry deadline of a binding table that is now gone.
        for key in client.scan_iter(match="_kombu.binding.*pidbox"):
            for member in client.smembers(key):
                if queue.encode() in member:
                    client.srem(key, member)
        for table in client.zrange("_kombu.binding_deadlines", 0, -1):
            name = table.decode()
            if not client.exists(f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}"):
                client.zrem("_kombu.binding_deadlines", table)


def finished(process: Worker, task: str, task_id: str) -> object:
    """What the worker logged the task returned, once it has."""
    done = re.compile(rf"Task {re.escape(task)}\[{re.escape(task_id)}\] succeeded in \S+: (.*)$")

    def result() -> re.Match | None:
        return next(filter(None, map(done.search, process.text().splitlines())), None)

    wait_for(lambda: result() is not None, TIMEOUT, f"{task} to succeed", process)
    return ast.literal_eval(result()[1])


def fresh(query):
    db.session.rollback()  # a new snapshot: see what the worker committed
    return db.session.scalars(query).all()


def request_statement(client, file_format: str, start: dt.date, end: dt.date) -> int:
    response = client.post(
        "/reportview/add",
        data={"kind": "partner_statement", "format": file_format,
              "start": start.isoformat(), "end": end.isoformat()},
    )  # fmt: skip
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return int(re.search(r"/reportview/show/(\d+)$", response.headers["Location"])[1])


def download(client, report_id: int, file_format: str, name: str) -> list[dict[str, str]]:
    response = client.get(f"/reportview/download/{report_id}")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment"), disposition
    assert f"{name}-{report_id}.{file_format}" in disposition
    return records(parse(response.data, file_format))


@needs_redis
def test_a_day_of_sales_goes_through_a_real_worker_to_a_paid_payout_and_matching_statements(
    client, worker
):
    process, queue = worker
    partner = make_partner("Aurora")
    event = make_event(partner, rows=("A", "C"), seats=10, refund_window_hours=48)
    event.publish()
    db.session.commit()
    partner_id = partner.id
    make_user("fiona", "Finance")
    make_user("alice", "Partner", partner)

    # Yesterday: three orders by card, the second cancelled by its customer.
    bia = sign_up(client, "bia@example.com", "Bia")
    orders = [buy(client, event, 2), buy(client, event, 3, buyer=bia), buy(client, event, 1)]
    response = client.post(f"/api/v1/orders/{orders[1]['id']}/cancel", headers=bia)
    assert response.status_code == 200 and response.get_json()["result"]["status"] == "refunded"
    payments = [payment_figures(order) for order in orders]
    # BRL 100.00 a seat (make_event); the partner's fee is 10 % + BRL 1.00 per ticket.
    assert [(p["amount_cents"], p["fee_cents"], p["net_cents"]) for p in payments] == [
        (20000, 2200, 17800), (30000, 3300, 26700), (10000, 1100, 8900),
    ]  # fmt: skip
    kept = [payments[0], payments[2]]
    sales = sum(p["amount_cents"] for p in payments)
    fees = sum(p["fee_cents"] for p in payments)
    refunds, fees_returned = payments[1]["amount_cents"], payments[1]["fee_cents"]
    settled = sum(p["net_cents"] for p in kept)
    assert (sales, fees, refunds, fees_returned, settled) == (60000, 6600, 30000, 3300, 26700)
    gateway_fees = sum(acquirer_fee(p["amount_cents"], *ACQUIRER_FEE) for p in payments)
    assert gateway_fees == 530 + 780 + 280
    day = happened_days_ago(1)  # at the acquirer and in our payments
    posted_days_ago(1)  # in the ledger
    today = utcnow().date()
    assert day == today - dt.timedelta(days=1)

    # The worker reconciles the day's settlement report, as the periodic task would.
    process.wait_until_ready(TIMEOUT)
    task_id = celery.send_task("money.reconcile_settlements", queue=queue).id
    wait_for(
        lambda: fresh(select(Settlement).where(Settlement.day == day)),
        TIMEOUT, "the settlement", process,
    )  # fmt: skip
    *earlier, summary = finished(process, "money.reconcile_settlements", task_id)
    assert summary == {"day": day.isoformat(), "settlements": 1, "lines": 4, "chargebacks": 0,
                       "mismatches": 0, "postings": 1}  # fmt: skip
    assert all(set(run.values()) == {0, run["day"]} for run in earlier), earlier
    [row] = fresh(select(Settlement))
    assert (row.captured_cents, row.refunded_cents, row.charged_back_cents) == (sales, refunds, 0)
    assert (row.fee_cents, row.net_cents) == (gateway_fees, sales - refunds - gateway_fees)
    assert fresh(select(SettlementMismatch)) == []
    assert balance(ledger.CLEARING) == 0
    assert balance(ledger.BANK) == sales - refunds - gateway_fees == 28410

    # Then it creates the payout: the settled balance, the day's sales less the cancelled one.
    task_id = celery.send_task("money.create_payouts", queue=queue).id
    wait_for(lambda: fresh(select(Payout)), TIMEOUT, "the payout", process)
    [payout] = fresh(select(Payout))
    assert finished(process, "money.create_payouts", task_id) == [payout.id]
    assert (payout.partner_id, payout.currency, payout.amount_cents) == (partner_id, "BRL", settled)
    assert payout.status == PayoutStatus.PENDING
    assert sum(item.amount_cents for item in payout.items) == settled
    assert len(payout.items) == 4  # three captures and the refund
    payout_id = payout.id

    # Finance approves it and marks it paid in the dashboard.
    login(client, "fiona")
    approved = client.post(f"/payoutview/action/approve/{payout_id}", follow_redirects=True)
    assert "1 payout(s) approved." in approved.get_data(as_text=True)
    paid = client.post(f"/payoutview/paid/{payout_id}", data={"bank_reference": BANK_REFERENCE})
    assert paid.status_code == 302, paid.get_data(as_text=True)[:2000]
    client.get("/logout/")
    payout = db.session.get(Payout, payout_id)
    assert (payout.status, payout.bank_reference) == (PayoutStatus.PAID, BANK_REFERENCE)
    posting = db.session.get(LedgerTransaction, payout.ledger_transaction_id)
    assert {e.account.code: e.amount_cents for e in posting.entries} == {
        f"partner_payable:{partner_id}": settled,
        ledger.BANK: -settled,
    }
    assert ledger.partner_balance(db.session, payout.partner, "BRL") == 0
    assert balance(ledger.BANK) == 28410 - settled

    # Today: one more sale, not settled yet.
    new = payment_figures(buy(client, event, 2))

    # The partner requests its statements; the worker writes them; the partner downloads them.
    login(client, "alice")
    requested = {
        "whole": request_statement(client, "csv", day, today),
        "whole_xlsx": request_statement(client, "xlsx", day, today),
        "today": request_statement(client, "csv", today, today),
    }

    def written() -> bool:
        statuses = fresh(select(Report.status).where(Report.id.in_(requested.values())))
        return len(statuses) == 3 and set(statuses) <= {ReportStatus.DONE, ReportStatus.FAILED}

    wait_for(written, TIMEOUT, "the statements", process)
    for report in fresh(select(Report).where(Report.id.in_(requested.values()))):
        assert report.status == ReportStatus.DONE, report.error
        assert report.partner_id == partner_id
    # The worker wrote them, not the web app.
    log = process.text()
    generated = re.findall(r"Task reports\.generate\[\S+\] succeeded in \S+: 'done'", log)
    assert len(generated) == 3, log[-3000:]
    whole_name = f"partner-statement-{day.isoformat()}-{today.isoformat()}"
    whole = download(client, requested["whole"], "csv", whole_name)
    assert download(client, requested["whole_xlsx"], "xlsx", whole_name) == whole
    today_name = f"partner-statement-{today.isoformat()}-{today.isoformat()}"
    current = download(client, requested["today"], "csv", today_name)

    # Both days: from nothing, the three sales, the cancellation, the payout, today's sale.
    db.session.rollback()
    partner = db.session.get(type(partner), partner_id)
    opening, *moves, closing = whole
    assert (opening["line"], closing["line"]) == ("opening", "closing")
    assert {line["partner"] for line in whole} == {"Aurora"}
    assert cents(opening["balance"]) == 0
    assert ledger.partner_balance(
        db.session, partner, "BRL", before=dt.datetime.combine(day, dt.time.min)
    ) == 0  # fmt: skip
    assert [(x["kind"], cents(x["change"])) for x in moves] == [
        ("capture", kept[0]["net_cents"]),
        ("capture", payments[1]["net_cents"]),
        ("capture", kept[1]["net_cents"]),
        ("refund", -payments[1]["net_cents"]),
        ("payout", -settled),
        ("capture", new["net_cents"]),
    ]
    assert BANK_REFERENCE in moves[4]["description"]
    assert moves[4]["transaction_id"] == str(payout.ledger_transaction_id)
    running = 0
    for move in moves:
        running += cents(move["change"])
        assert cents(move["balance"]) == running
    expected = {
        "sales": sales + new["amount_cents"],
        "fees": fees + new["fee_cents"],
        "refunds": refunds,
        "chargebacks": 0,
        "fees_returned": fees_returned,
        "payouts": settled,
    }
    assert expected == {"sales": 80000, "fees": 8800, "refunds": 30000, "chargebacks": 0,
                        "fees_returned": 3300, "payouts": 26700}  # fmt: skip
    closing_balance = (
        expected["sales"] - expected["fees"] - expected["refunds"] + expected["fees_returned"]
        - expected["payouts"]
    )  # fmt: skip
    assert closing_balance == new["net_cents"] == 17800
    [book] = ledger.partner_statements(db.session, [partner_id])
    for key, value in expected.items():
        assert cents(closing[key]) == book[key] == value, key
        assert sum(cents(x[key]) for x in moves) == value, key
    assert cents(closing["balance"]) == book["balance"] == closing_balance
    assert ledger.partner_balance(db.session, partner, "BRL") == closing_balance
    assert cents(closing["change"]) == closing_balance

    # Today only: it opens on yesterday's settled sales, pays them out, and sells once more.
    opening, *moves, closing = current
    since = dt.datetime.combine(today, dt.time.min)
    assert cents(opening["balance"]) == settled == ledger.partner_balance(
        db.session, partner, "BRL", before=since
    )  # fmt: skip
    assert [(x["kind"], cents(x["change"])) for x in moves] == [
        ("payout", -settled), ("capture", new["net_cents"]),
    ]  # fmt: skip
    assert {k: cents(closing[k]) for k in expected} == {
        "sales": new["amount_cents"], "fees": new["fee_cents"], "refunds": 0, "chargebacks": 0,
        "fees_returned": 0, "payouts": settled,
    }  # fmt: skip
    assert cents(closing["balance"]) == closing_balance
    assert cents(closing["change"]) == closing_balance - settled
    # Nothing was posted twice along the way.
    kinds = dict(
        db.session.execute(
            select(LedgerTransaction.kind, func.count()).group_by(LedgerTransaction.kind)
        ).all()
    )
    assert kinds == {"capture": 4, "refund": 1, "settlement": 1, "payout": 1}
