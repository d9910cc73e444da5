"""The business's metrics at /metrics: each counted where it happens, with labels from small
fixed sets; gauges that need a query computed at scrape time, cached; /metrics not public."""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from app import metrics
from app.extensions import celery, db
from app.models import Payout, PayoutStatus, Ticket, TicketStatus
from app.models.base import utcnow
from app.models.settlement import Settlement, SettlementMismatch
from app.services import checkin, payouts, refunds
from app.services.payments import gateway
from app.services.purchase import release as holds
from app.services.purchase import sold_out
from app.tasks import task_metrics
from tests.support.apps import another_app
from tests.support.builders import PartnerActor, make_event, make_partner, make_user
from tests.support.gate import device, open_event, result, scan
from tests.support.metrics import sample, scrape, value
from tests.support.money import create_payouts, happened_days_ago, reconcile
from tests.support.shop import (
    NO_FUNDS,
    buy,
    card_token,
    expire,
    hold_seats,
    pay,
    payment_figures,
    sign_up,
)


@pytest.fixture
def fresh_gauges(app):
    """Scrape-time gauges computed at every scrape (no cache), for the test."""
    saved = app.config["METRICS_STATE_SECONDS"]
    app.config["METRICS_STATE_SECONDS"] = 0
    yield
    app.config["METRICS_STATE_SECONDS"] = saved


class Delta:
    """Samples read before and after: what the test's actions added."""

    def __init__(self, client, *wanted: tuple[str, dict[str, str]]) -> None:
        self.client, self.wanted = client, wanted
        self.before = self._read()

    def _read(self) -> list[float]:
        body = scrape(self.client)
        return [sample(body, name, **labels) for name, labels in self.wanted]

    def added(self) -> list[float]:
        return [after - before for before, after in zip(self.before, self._read(), strict=True)]


def m(name: str, **labels: str) -> tuple[str, dict[str, str]]:
    return name, labels


def test_a_sale_counts_tickets_revenue_holds_and_the_checkout(client, on_sale):
    delta = Delta(
        client,
        m("bilheteria_tickets_sold_total", currency="BRL"),
        m("bilheteria_revenue_cents_total", currency="BRL"),
        m("bilheteria_holds_total", outcome="created"),
        m("bilheteria_holds_total", outcome="converted"),
        m("bilheteria_checkout_seconds_count", outcome="paid"),
    )
    order = buy(client, on_sale, 3)
    amount = payment_figures(order)["amount_cents"]
    assert delta.added() == [3, amount, 3, 3, 1]


def test_a_decline_counts_its_reason_and_the_checkout_outcome(client, on_sale):
    headers = sign_up(client)
    held = hold_seats(client, headers, on_sale)
    delta = Delta(
        client,
        m("bilheteria_payment_declines_total", reason="insufficient_funds"),
        m("bilheteria_checkout_seconds_count", outcome="declined"),
        m("bilheteria_tickets_sold_total"),
    )
    assert pay(client, headers, held["id"], card_token(client, NO_FUNDS)).status_code == 402
    assert delta.added() == [1, 1, 0]


def test_a_reason_outside_the_known_set_is_counted_as_other():
    registry = CollectorRegistry()
    metrics.register(registry)
    before = (
        registry.get_sample_value("bilheteria_payment_declines_total", {"reason": "other"}) or 0.0
    )
    metrics.count_decline("a-new-code-from-the-processor-1234")
    assert registry.get_sample_value("bilheteria_payment_declines_total", {"reason": "other"}) == (
        before + 1
    )
    assert (
        registry.get_sample_value(
            "bilheteria_payment_declines_total", {"reason": "a-new-code-from-the-processor-1234"}
        )
        is None
    )


def test_a_taken_seat_and_a_sold_out_section_are_seat_conflicts(client):
    event = make_event(make_partner("Aurora"), rows=("A", "A"), seats=2)
    event.publish()
    db.session.commit()
    first, second = sign_up(client, "first@example.com"), sign_up(client, "second@example.com")
    hold_seats(client, first, event, 2)
    delta = Delta(
        client,
        m("bilheteria_seat_conflicts_total", path="full"),
        m("bilheteria_seat_conflicts_total", path="fast"),
    )
    spot_ids = [s.id for s in event.sections[0].spots]
    taken = client.post(
        "/api/v1/holds/", json={"event_id": event.id, "spot_ids": spot_ids}, headers=second
    )
    assert taken.status_code == 409
    assert delta.added() == [1, 0]
    # Best-available in the sold-out section: refused by the app, then (remembered) in front.
    wanted = {"event_id": event.id, "section_id": event.sections[0].id, "quantity": 1}
    sold_out.forget()
    assert client.post("/api/v1/holds/", json=wanted, headers=second).status_code == 409
    assert client.post("/api/v1/holds/", json=wanted, headers=second).status_code == 409
    assert delta.added() == [2, 1]
    sold_out.forget()


def test_released_and_expired_holds_count_their_places(client, on_sale):
    headers = sign_up(client)
    delta = Delta(
        client,
        m("bilheteria_holds_total", outcome="released"),
        m("bilheteria_holds_total", outcome="expired"),
    )
    released = hold_seats(client, headers, on_sale, 2)
    assert client.delete(f"/api/v1/holds/{released['id']}", headers=headers).status_code == 200
    lapsed = hold_seats(client, headers, on_sale, 3)
    expire(lapsed["id"])
    assert holds.release_expired_holds(db.session) == 1
    assert delta.added() == [2, 3]


def test_refunds_count_who_asked_and_the_amount(client):
    partner = make_partner("Aurora")
    event = make_event(partner, rows=("A", "B"), seats=5, refund_window_hours=24)
    event.publish()
    db.session.commit()
    headers = sign_up(client)
    delta = Delta(
        client,
        m("bilheteria_refunds_total", by="customer"),
        m("bilheteria_refunds_total", by="partner"),
        m("bilheteria_refunded_cents_total", currency="BRL"),
    )
    mine = buy(client, event, 2, buyer=headers)
    cancelled = client.post(f"/api/v1/orders/{mine['id']}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.get_json()
    theirs = buy(client, event, 1)
    refunds.refund_order(db.session, gateway(), theirs["id"], PartnerActor(partner))
    paid_back = payment_figures(mine)["amount_cents"] + payment_figures(theirs)["amount_cents"]
    assert delta.added() == [1, 1, paid_back]


def _tickets_and_gate(client, count: int) -> tuple[list[dict], dict[str, str]]:
    """``count`` tickets of an event whose doors are open, and a gate device's API headers."""
    partner = make_partner("Aurora")
    event = open_event(partner)
    return buy(client, event, count)["tickets"], device(partner, event)


def test_scans_count_by_result_and_the_store_that_answered(client, store):
    tickets, gate = _tickets_and_gate(client, 2)
    # With Redis, the first scan arms the event: the fast path in front of the app answers next.
    then = "fast" if store == "redis" else "database"
    delta = Delta(
        client,
        m("bilheteria_scans_total", result="valid", path=store),
        m("bilheteria_scans_total", result="already_used", path=then),
        m("bilheteria_scans_total", result="invalid", path=then),
    )
    assert result(scan(client, gate, tickets[0]["code"], nonce="scan-0001"))["result"] == "valid"
    # A retry of the same scan is the same scan: counted once.
    assert result(scan(client, gate, tickets[0]["code"], nonce="scan-0001"))["result"] == "valid"
    assert result(scan(client, gate, tickets[0]["code"]))["result"] == "already_used"
    assert result(scan(client, gate, "not-a-code"))["result"] == "invalid"
    assert delta.added() == [1, 1, 1]


def test_scans_answered_by_the_fast_path_and_offline_uploads_are_counted(client, store):
    if store != "redis":
        pytest.skip("the fast path answers armed events from Redis")
    tickets, gate = _tickets_and_gate(client, 3)
    delta = Delta(
        client,
        m("bilheteria_scans_total", result="valid", path="redis"),
        m("bilheteria_scans_total", result="valid", path="fast"),
        m("bilheteria_scans_total", result="already_used", path="fast"),
        m("bilheteria_scans_total", result="valid", path="offline"),
    )
    # The first scan arms the event (the app's full path, with the Redis store) ...
    assert result(scan(client, gate, tickets[0]["code"], nonce="fast-0001"))["result"] == "valid"
    # ... then the fast path in front of the app answers, a retry counted once.
    assert result(scan(client, gate, tickets[1]["code"], nonce="fast-0002"))["result"] == "valid"
    assert result(scan(client, gate, tickets[1]["code"], nonce="fast-0002"))["result"] == "valid"
    assert result(scan(client, gate, tickets[1]["code"]))["result"] == "already_used"
    scanned_at = (utcnow() - dt.timedelta(minutes=5)).isoformat() + "Z"
    upload = {
        "scans": [
            {"code": tickets[2]["code"], "gate": "North", "direction": "in",
             "nonce": "offline-0001", "scanned_at": scanned_at, "verdict": "valid"},
        ]
    }  # fmt: skip
    up = client.post("/api/v1/checkin/offline-scans", json=upload, headers=gate)
    assert up.status_code == 200, up.get_json()
    assert delta.added() == [1, 1, 1, 1]


def test_the_scan_log_backlog_is_what_redis_holds_unwritten(client, store, fresh_gauges):
    if store != "redis":
        pytest.skip("the scan log waits in Redis only with the Redis store")
    tickets, gate = _tickets_and_gate(client, 2)
    for ticket in tickets:
        result(scan(client, gate, ticket["code"]))
    waiting = checkin.redis_client().llen("ck:log")
    assert waiting >= 2
    body = scrape(client)
    assert sample(body, "bilheteria_scan_log_backlog") == waiting
    assert sample(body, "bilheteria_checkin_store_up", store="redis") == 1
    checkin.flush_scan_log(db.session)
    assert value(client, "bilheteria_scan_log_backlog") == 0


def test_waiting_rooms_count_joins_admissions_and_the_line(client, app, fresh_gauges):
    event = make_event(make_partner("Arena"), "Big Night", rows=("A", "C"), seats=10)
    event.waiting_room_per_minute = 6  # one every ten seconds
    event.publish()
    db.session.commit()
    buyers = [sign_up(client, f"fan{n}@example.com") for n in range(4)]
    delta = Delta(
        client,
        m("bilheteria_waiting_room_joined_total"),
        m("bilheteria_waiting_room_admitted_total"),
    )
    saved = app.config["WAITING_ROOM_BURST"]
    app.config["WAITING_ROOM_BURST"] = 1  # the first comes in at once, the others wait
    try:
        for headers in buyers:
            joined = client.post(f"/api/v1/queue/{event.id}", headers=headers)
            assert joined.status_code == 200, joined.get_json()
        client.post(f"/api/v1/queue/{event.id}", headers=buyers[0])  # already in: not again
    finally:
        app.config["WAITING_ROOM_BURST"] = saved
    hold_seats(client, buyers[0], event, 1)  # the first buyer's turn
    assert delta.added() == [4, 1]
    body = scrape(client)
    assert sample(body, "bilheteria_waiting_room_length", event=str(event.id)) == 3
    assert sample(body, "bilheteria_waiting_room_rate_per_minute", event=str(event.id)) == 6
    assert 20 < sample(body, "bilheteria_waiting_room_wait_seconds", event=str(event.id)) <= 30


def test_money_gauges_follow_the_books_and_are_cached_between_scrapes(client, app):
    partner = make_partner("Aurora")
    settlement = Settlement(gateway="sim", day=dt.date(2026, 11, 30), currency="BRL")
    db.session.add(settlement)
    db.session.flush()
    db.session.add_all(
        [
            SettlementMismatch(
                settlement_id=settlement.id, kind="missing_from_report", line_kind="charge",
                reference=f"ch_{n}", detail="not in the report",
            )
            for n in range(2)
        ]
        + [
            Payout(partner_id=partner.id, currency="BRL", amount_cents=12_345,
                   status=PayoutStatus.PENDING.value),
            Payout(partner_id=partner.id, currency="BRL", amount_cents=655,
                   status=PayoutStatus.APPROVED.value),
        ]
    )  # fmt: skip
    db.session.commit()
    saved = app.config["METRICS_STATE_SECONDS"]
    app.config["METRICS_STATE_SECONDS"] = 0
    try:
        body = scrape(client)
        assert sample(body, "bilheteria_settlement_mismatches_open") == 2
        assert sample(body, "bilheteria_payouts_pending") == 2
        assert sample(body, "bilheteria_payouts_pending_cents", currency="BRL") == 13_000
        assert sample(body, "bilheteria_checkin_store_up", store="database") == 1
        # Cached: a scrape within METRICS_STATE_SECONDS queries nothing.
        app.config["METRICS_STATE_SECONDS"] = 3600
        db.session.add(
            SettlementMismatch(
                settlement_id=settlement.id, kind="missing_from_report", line_kind="charge",
                reference="ch_late", detail="not in the report",
            )
        )  # fmt: skip
        db.session.commit()
        assert value(client, "bilheteria_settlement_mismatches_open") == 2
        app.config["METRICS_STATE_SECONDS"] = 0
        assert value(client, "bilheteria_settlement_mismatches_open") == 3
    finally:
        app.config["METRICS_STATE_SECONDS"] = saved


@pytest.mark.usefixtures("acquirer_fees")
def test_settlement_runs_and_paid_payouts_are_counted(client, on_sale):
    delta = Delta(
        client,
        m("bilheteria_settlement_runs_total", result="matched"),
        m("bilheteria_payouts_paid_total"),
        m("bilheteria_payouts_paid_cents_total", currency="BRL"),
    )
    buy(client, on_sale)
    reconcile(happened_days_ago(2))
    [payout_id] = create_payouts()
    finance = make_user("fiona", "Finance")
    payouts.approve_payout(db.session, payout_id, finance, utcnow())
    paid = payouts.mark_payout_paid(db.session, payout_id, "TED 1", finance, utcnow())
    assert delta.added() == [1, 1, paid.amount_cents]


def test_a_database_that_does_not_answer_reports_its_store_down(app):
    with another_app(
        app,
        SQLALCHEMY_DATABASE_URI="postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
        REDIS_URL=None,
        METRICS_STATE_SECONDS=0,
    ) as down:
        body = down.test_client().get("/metrics").get_data(as_text=True)
    assert sample(body, "bilheteria_checkin_store_up", store="database") == 0
    assert "bilheteria_settlement_mismatches_open" not in body  # left out, not a made-up 0


def test_the_queue_gauges_read_the_broker(client, broker, fresh_gauges):
    client_redis, queue = broker
    saved = celery.conf.task_default_queue
    celery.conf.task_default_queue = queue
    try:
        if True:
            empty = scrape(client)
            assert sample(empty, "bilheteria_celery_queue_length", queue=queue) == 0
            assert sample(empty, "bilheteria_celery_queue_oldest_age_seconds", queue=queue) == 0
            # A message sent now is stamped with the time it was sent ...
            celery.send_task("holds.release_expired", queue=queue)
            [raw] = client_redis.lrange(queue, 0, -1)
            sent_at = json.loads(raw)["headers"]["bilheteria_sent_at"]
            assert abs(sent_at - time.time()) < 60
            # ... and the oldest message's age is read from it.
            old = json.loads(raw)
            old["headers"]["bilheteria_sent_at"] = time.time() - 90
            client_redis.rpush(queue, json.dumps(old))  # the right end: the oldest
            body = scrape(client)
        assert sample(body, "bilheteria_celery_queue_length", queue=queue) == 2
        assert 90 <= sample(body, "bilheteria_celery_queue_oldest_age_seconds", queue=queue) < 150
    finally:
        celery.conf.task_default_queue = saved


_FLAKY_RUNS = [0]


@celery.task(bind=True, name="tests.metrics.flaky", max_retries=1)
def _flaky(self) -> str:
    _FLAKY_RUNS[0] += 1
    if _FLAKY_RUNS[0] % 2 == 1:
        raise self.retry(countdown=0)
    return "ok"


@celery.task(name="tests.metrics.broken")
def _broken() -> None:
    raise RuntimeError("the task's own failure")


def test_task_runs_count_successes_failures_retries_and_time(app):
    registry = CollectorRegistry()
    metrics.register(registry)

    def runs(task: str, state: str) -> float:
        return (
            registry.get_sample_value(
                "bilheteria_celery_task_runs_total", {"task": task, "state": state}
            )
            or 0.0
        )

    timed = (
        registry.get_sample_value(
            "bilheteria_celery_task_seconds_count", {"task": "tests.metrics.flaky"}
        )
        or 0.0
    )
    before = [runs("tests.metrics.flaky", "retried"), runs("tests.metrics.flaky", "succeeded")]
    # As a worker runs them: errors end the run (throw=False), they do not reach a caller. Run
    # eagerly, the retry runs at once: a retried run, then a run that succeeds.
    _FLAKY_RUNS[0] = 0
    assert _flaky.apply(throw=False).get() == "ok"
    assert _FLAKY_RUNS[0] == 2
    assert [runs("tests.metrics.flaky", "retried"), runs("tests.metrics.flaky", "succeeded")] == [
        before[0] + 1,
        before[1] + 1,
    ]
    assert (
        registry.get_sample_value(
            "bilheteria_celery_task_seconds_count", {"task": "tests.metrics.flaky"}
        )
        == timed + 2
    )
    failed = runs("tests.metrics.broken", "failed")
    assert isinstance(_broken.apply(throw=False).result, RuntimeError)
    assert runs("tests.metrics.broken", "failed") == failed + 1


def test_the_worker_serves_its_metrics_on_its_own_port(monkeypatch):
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("WORKER_METRICS_PORT", str(port))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    task_metrics._serve_worker_metrics()
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        body = response.read().decode()
    assert "bilheteria_celery_task_runs_total" in body


def test_the_pool_gauge_counts_connections_checked_out(app):
    registry = CollectorRegistry()
    metrics.register(registry)

    def in_use() -> float:
        return registry.get_sample_value("bilheteria_db_pool_connections_in_use")

    before = in_use()
    with db.engine.connect(), db.engine.connect():
        assert in_use() == before + 2
    assert in_use() == before


def test_labels_name_no_customer_ticket_or_order(client, on_sale):
    buy(client, on_sale, 1)
    allowed = {
        "currency", "outcome", "path", "reason", "by", "result", "task", "state", "queue",
        "event", "store", "method", "status", "endpoint", "version", "le",
    }  # fmt: skip
    seen = {
        label
        for family in text_string_to_metric_families(scrape(client))
        for s in family.samples
        for label in s.labels
    }
    assert seen <= allowed, seen - allowed


def test_metrics_need_the_token_when_one_is_set(app):
    with another_app(app, METRICS_TOKEN="s3cret-scrape-token") as guarded:
        client = guarded.test_client()
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
        right = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
        assert right.status_code == 200 and "bilheteria_tickets_sold_total" in right.text


def test_without_a_token_metrics_answer_only_this_machine_and_never_in_production(app):
    client = app.test_client()
    assert client.get("/metrics").status_code == 200  # 127.0.0.1
    outside = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert outside.status_code == 404
    with another_app(app, APP_ENV="production", SECRET_KEY="x" * 40) as production:
        assert production.test_client().get("/metrics").status_code == 404


def test_money_amounts_are_whole_cents(client, on_sale):
    buy(client, on_sale, 1)
    body = scrape(client)
    revenue = sample(body, "bilheteria_revenue_cents_total", currency="BRL")
    assert revenue > 0 and Decimal(str(revenue)) == int(revenue)
    assert db.session.scalar(select(func.count()).where(Ticket.status == TicketStatus.VALID)) >= 1


def _series(family) -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return {family.name + suffix for suffix in suffixes.get(family.type, ("",))}


def test_the_app_exports_the_series_the_dashboards_and_alerts_read(app, fresh_gauges):
    from app.services.metrics_state import StateCollector
    from ops import metric_names

    with app.app_context():
        state = list(StateCollector(app).collect())
    exported = {
        name
        for family in [f for metric in metrics.ALL for f in metric.describe()] + state
        for name in _series(family)
    }
    contract = {n for n in metric_names.WEB | metric_names.WORKER if n.startswith("bilheteria_")}
    assert exported == contract
