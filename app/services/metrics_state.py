"""Gauges that need a query, computed when Prometheus scrapes (never per request) and kept a few
seconds (``METRICS_STATE_SECONDS``), so several scrapers, or one scraping often, cost a query
set per period: settlement mismatches, payouts pending, waiting rooms, the scan log's backlog in
Redis, the check-in stores, the Celery queue.

A source that fails (the database or Redis down) leaves its gauges out and reports its store
down; the scrape itself never fails.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis
from flask import Flask, current_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from app.extensions import db
from app.models import Event, Payout, PayoutStatus
from app.models.base import utcnow
from app.models.settlement import SettlementMismatch
from app.models.waiting_room import WaitingEntry
from app.services.checkin.redis_keys import LOG_KEY, redis_for

log = logging.getLogger(__name__)

# The header every task message carries with the time it was sent (set on publish), so the
# age of the oldest message waiting in the broker can be read.
SENT_AT_HEADER = "bilheteria_sent_at"
_UNPAID = (PayoutStatus.PENDING.value, PayoutStatus.APPROVED.value)


class StateCollector(Collector):
    """The app's scrape-time gauges, kept METRICS_STATE_SECONDS (read at each scrape)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._at = float("-inf")

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._at >= self.app.config["METRICS_STATE_SECONDS"]:
                with self.app.app_context():
                    self._cached = list(self._measure())
                self._at = time.monotonic()
            return iter(list(self._cached))

    def _measure(self) -> Iterator[Metric]:
        stores = GaugeMetricFamily(
            "bilheteria_checkin_store_up",
            "Whether the check-in store answers (1) or not (0): redis, database.",
            labels=["store"],
        )
        stores.add_metric(["database"], 1.0 if (yield from _guarded(_database)) else 0.0)
        url = self.app.config.get("REDIS_URL")
        if url:
            client = redis_for(url)
            up = yield from _guarded(lambda: _redis(client))
            stores.add_metric(["redis"], 1.0 if up else 0.0)
        broker = self.app.config.get("CELERY_BROKER_URL") or ""
        if broker.startswith(("redis://", "rediss://", "unix://")):
            queue = self.app.extensions["celery"].conf.task_default_queue
            yield from _guarded(lambda: _queue(redis_for(broker), queue))
        yield stores


def _guarded(measure: Callable[[], Iterable[Metric]]) -> Iterator[Metric]:
    """Yield what ``measure`` gives; True if it worked, False (logged) if its source failed."""
    try:
        metrics = list(measure())
    except Exception:  # noqa: BLE001 - a scrape reports a source down, it never fails
        log.warning("a metrics source failed", exc_info=True)
        return False
    yield from metrics
    return True


def _database() -> Iterator[Metric]:
    with db.engine.connect() as conn:
        mismatches = conn.execute(select(func.count()).select_from(SettlementMismatch)).scalar()
        unpaid = conn.execute(
            select(Payout.currency, func.count(), func.sum(Payout.amount_cents))
            .where(Payout.status.in_(_UNPAID))
            .group_by(Payout.currency)
        ).all()
        now = utcnow()
        lines = conn.execute(
            select(
                WaitingEntry.event_id,
                func.count().filter(WaitingEntry.admit_at > now),
                func.max(WaitingEntry.admit_at),
                Event.waiting_room_per_minute,
            )
            .join(Event, Event.id == WaitingEntry.event_id)
            .where(Event.waiting_room_per_minute.is_not(None))
            .group_by(WaitingEntry.event_id, Event.waiting_room_per_minute)
        ).all()
    yield GaugeMetricFamily(
        "bilheteria_settlement_mismatches_open",
        "Settlement mismatches recorded: report lines that do not match the books.",
        value=mismatches,
    )
    count = GaugeMetricFamily(
        "bilheteria_payouts_pending", "Payouts made but not paid yet (pending or approved)."
    )
    count.add_metric([], sum(row[1] for row in unpaid))
    yield count
    cents = GaugeMetricFamily(
        "bilheteria_payouts_pending_cents",
        "Amount of the payouts not paid yet, in cents of the currency.",
        labels=["currency"],
    )
    # The platform's currency always has a series (0 when nothing is pending).
    amounts = {current_app.config["DEFAULT_CURRENCY"]: 0}
    amounts.update({currency: int(total or 0) for currency, _, total in unpaid})
    for currency, total in sorted(amounts.items()):
        cents.add_metric([currency], total)
    yield cents
    # One series per event with a waiting room in use: a handful at a time.
    length = GaugeMetricFamily(
        "bilheteria_waiting_room_length",
        "Customers waiting for their turn, per event with a waiting room in use.",
        labels=["event"],
    )
    wait = GaugeMetricFamily(
        "bilheteria_waiting_room_wait_seconds",
        "How long the last customer in line waits for their turn, per event.",
        labels=["event"],
    )
    rate = GaugeMetricFamily(
        "bilheteria_waiting_room_rate_per_minute",
        "The rate a waiting room lets customers in, per event with a waiting room in use.",
        labels=["event"],
    )
    for event_id, waiting, last, per_minute in lines:
        length.add_metric([str(event_id)], waiting)
        wait.add_metric([str(event_id)], max((last - now).total_seconds(), 0.0))
        rate.add_metric([str(event_id)], per_minute)
    yield from (length, wait, rate)


def _redis(client: redis.Redis) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "bilheteria_scan_log_backlog",
        "Gate scans kept in Redis and not yet written to the database.",
        value=client.llen(LOG_KEY),
    )


def _queue(client: redis.Redis, queue: str) -> Iterator[Metric]:
    """The broker's queue: its length and the age of its oldest message (kombu's Redis
    transport pushes on the left and takes from the right: the oldest is the last)."""
    length = GaugeMetricFamily(
        "bilheteria_celery_queue_length", "Task messages waiting in the queue.", labels=["queue"]
    )
    age = GaugeMetricFamily(
        "bilheteria_celery_queue_oldest_age_seconds",
        "How long the oldest task message has waited in the queue (0 when empty).",
        labels=["queue"],
    )
    pipe = client.pipeline(transaction=False)
    pipe.llen(queue)
    pipe.lindex(queue, -1)
    waiting, oldest = pipe.execute()
    length.add_metric([queue], waiting)
    age.add_metric([queue], _age(oldest))
    yield from (length, age)


def _age(raw: bytes | str | None) -> float:
    if raw is None:
        return 0.0
    try:
        sent_at = float(json.loads(raw)["headers"][SENT_AT_HEADER])
    except (ValueError, KeyError, TypeError):
        return 0.0  # a message sent by something else: its age is unknown
    return max(time.time() - sent_at, 0.0)


def stamp_sent_at(headers: dict[str, Any] | None) -> None:
    """Mark a task message with the time it is sent (Celery's before_task_publish)."""
    if headers is not None:
        headers[SENT_AT_HEADER] = time.time()
