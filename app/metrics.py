"""The business's own Prometheus metrics: what sells, what is refused, what the gate answers,
what the workers do. docs/OPERATIONS.md (and ops/) say what each is for.

Counters and histograms are counted where the fact happens (a sale once its transaction has
committed, a scan once answered), with labels from small fixed sets: never a customer, a ticket
or an order. Gauges that need a query are not kept here: ``services/metrics_state.py`` computes
them when Prometheus scrapes.

The metrics belong to no registry: ``observability.configure_metrics`` registers them with each
app's (tests build many apps), and under the production server (PROMETHEUS_MULTIPROC_DIR) every
process writes its values to that directory, which the scrape sums.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import CollectorRegistry
from sqlalchemy import Pool, event

# Seconds: a checkout is a card charge between two short transactions.
CHECKOUT_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)

TICKETS_SOLD = Counter(
    "bilheteria_tickets_sold", "Tickets sold (paid orders).", ["currency"], registry=None
)
REVENUE = Counter(
    "bilheteria_revenue_cents",
    "Gross amount charged for tickets sold, in cents of the currency.",
    ["currency"],
    registry=None,
)
HOLDS = Counter(
    "bilheteria_holds",
    "Places held, by what happened: created, then converted (sold), released or expired.",
    ["outcome"],
    registry=None,
)
SEAT_CONFLICTS = Counter(
    "bilheteria_seat_conflicts",
    "Holds refused (409) because the places were taken or the section sold out; path=fast is"
    " a sold-out section refused in front of the app.",
    ["path"],
    registry=None,
)
CHECKOUT = Histogram(
    "bilheteria_checkout_seconds",
    "Checkout requests by outcome, and how long they took (the card charge included).",
    ["outcome"],
    buckets=CHECKOUT_BUCKETS,
    registry=None,
)
DECLINES = Counter(
    "bilheteria_payment_declines",
    "Payments the card processor declined or failed, by its reason.",
    ["reason"],
    registry=None,
)
REFUNDS = Counter(
    "bilheteria_refunds",
    "Refunds completed, by who asked: customer, partner, admin, event_cancelled or system.",
    ["by"],
    registry=None,
)
REFUNDED = Counter(
    "bilheteria_refunded_cents",
    "Amount refunded to cards, in cents of the currency.",
    ["currency"],
    registry=None,
)
WAITING_JOINED = Counter(
    "bilheteria_waiting_room_joined", "Places taken in on-sale waiting rooms.", registry=None
)
WAITING_ADMITTED = Counter(
    "bilheteria_waiting_room_admitted",
    "Customers let in by a waiting room who held places in their turn.",
    registry=None,
)
SCANS = Counter(
    "bilheteria_scans",
    "Gate scans answered, by verdict and by the path that answered: fast (in front of the app,"
    " Redis), redis or database (the app with that store), offline (uploaded later).",
    ["result", "path"],
    registry=None,
)
SETTLEMENT_RUNS = Counter(
    "bilheteria_settlement_runs",
    "Acquirer reports reconciled, by whether the run found new mismatches.",
    ["result"],
    registry=None,
)
PAYOUTS_PAID = Counter("bilheteria_payouts_paid", "Payouts marked paid.", registry=None)
PAYOUTS_PAID_CENTS = Counter(
    "bilheteria_payouts_paid_cents",
    "Amount paid out to partners, in cents of the currency.",
    ["currency"],
    registry=None,
)
DB_POOL_IN_USE = Gauge(
    "bilheteria_db_pool_connections_in_use",
    "Database connections checked out of the pools (summed over processes).",
    registry=None,
    multiprocess_mode="livesum",
)
TASK_RUNS = Counter(
    "bilheteria_celery_task_runs",
    "Celery task runs by task and how they ended: succeeded, failed or retried.",
    ["task", "state"],
    registry=None,
)
TASK_SECONDS = Histogram(
    "bilheteria_celery_task_seconds",
    "How long Celery task runs took, by task.",
    ["task"],
    buckets=TASK_BUCKETS,
    registry=None,
)
TASKS_RESENT = Counter(
    "bilheteria_tasks_resent",
    "Tasks the beat's sweeps sent again because their work had not begun LOST_TASK_GRACE_MINUTES"
    " after they were sent (the broker lost them, or the queue is that far behind), by task.",
    ["task"],
    registry=None,
)

ALL = (
    TICKETS_SOLD, REVENUE, HOLDS, SEAT_CONFLICTS, CHECKOUT, DECLINES, REFUNDS, REFUNDED,
    WAITING_JOINED, WAITING_ADMITTED, SCANS, SETTLEMENT_RUNS, PAYOUTS_PAID, PAYOUTS_PAID_CENTS,
    DB_POOL_IN_USE, TASK_RUNS, TASK_SECONDS, TASKS_RESENT,
)  # fmt: skip

# Label values from fixed sets: anything else is counted as "other" (a label per unexpected
# value would let a misbehaving processor grow the series without bound).
DECLINE_REASONS = frozenset(
    {
        "card_declined",
        "insufficient_funds",
        "processing_error",
        "invalid_token",
        "token_already_used",
        "token_expired",
    }
)
SCAN_RESULTS = frozenset(
    {"valid", "already_used", "invalid", "revoked", "wrong_event", "not_valid_now"}
)
SCAN_PATHS = ("fast", "redis", "database", "offline")
HOLD_OUTCOMES = ("created", "converted", "released", "expired")
CONFLICT_PATHS = ("full", "fast")
CHECKOUT_OUTCOMES = (
    "paid", "declined", "hold_expired", "price_changed", "in_progress", "busy", "refused", "error",
)  # fmt: skip
REFUND_SOURCES = ("customer", "partner", "admin", "event_cancelled", "system")
SETTLEMENT_RESULTS = ("matched", "mismatch")
TASK_STATES = ("succeeded", "failed", "retried")
# The tasks a sweep sends again when the broker lost them.
RESENT_TASKS = ("reports.generate", "refunds.cancelled_event")


def bounded(value: str | None, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``, else "other"."""
    return value if value is not None and value in allowed else "other"


def register(registry: CollectorRegistry) -> None:
    """Add every metric of this module to ``registry`` (one per app)."""
    for metric in ALL:
        registry.register(metric)


def initialize(currencies: Iterable[str]) -> None:
    """Create every series of the fixed label sets at zero, so that a dashboard or an alert reads
    0 before the first sale, decline or refund rather than nothing (Prometheus' advice on
    missing series)."""
    for currency in currencies:
        for metric in (TICKETS_SOLD, REVENUE, REFUNDED, PAYOUTS_PAID_CENTS):
            metric.labels(currency)
    for metric, values in (
        (HOLDS, HOLD_OUTCOMES),
        (SEAT_CONFLICTS, CONFLICT_PATHS),
        (CHECKOUT, CHECKOUT_OUTCOMES),
        (DECLINES, sorted(DECLINE_REASONS) + ["other"]),
        (REFUNDS, REFUND_SOURCES),
        (SETTLEMENT_RUNS, SETTLEMENT_RESULTS),
    ):
        for label in values:
            metric.labels(label)


def initialize_tasks(names: Iterable[str]) -> None:
    """The task series of each of these tasks at zero (a worker's, at its start)."""
    for name in names:
        TASK_SECONDS.labels(name)
        for state in TASK_STATES:
            TASK_RUNS.labels(name, state)
    for name in RESENT_TASKS:
        TASKS_RESENT.labels(name)


def count_resent(task: str) -> None:
    TASKS_RESENT.labels(bounded(task, RESENT_TASKS)).inc()


# Children looked up once: a gate's scan is counted without a label lookup.
_SCAN_CHILDREN = {(r, p): SCANS.labels(r, p) for r in SCAN_RESULTS for p in SCAN_PATHS}


def count_scan(result: str, path: str) -> None:
    child = _SCAN_CHILDREN.get((result, path))
    (child or SCANS.labels("other", path)).inc()


def count_sale(tickets: int, cents: int, currency: str) -> None:
    TICKETS_SOLD.labels(currency).inc(tickets)
    REVENUE.labels(currency).inc(cents)
    HOLDS.labels("converted").inc(tickets)


def count_decline(reason: str | None) -> None:
    DECLINES.labels(bounded(reason, DECLINE_REASONS)).inc()


@contextmanager
def timed_checkout() -> Iterator[None]:
    """Time a checkout (a decorator of the service's function, or a ``with`` block): its
    outcome is "paid" unless it raised, then the error's (``checkout_outcome``)."""
    started = time.perf_counter()
    outcome = "paid"
    try:
        yield
    except BaseException as exc:
        outcome = checkout_outcome(exc)
        raise
    finally:
        CHECKOUT.labels(outcome).observe(time.perf_counter() - started)


def checkout_outcome(exc: BaseException) -> str:
    """The outcome label of a checkout that raised ``exc``, by its error code."""
    code = getattr(exc, "code", None)
    return {
        "card_declined": "declined",
        "hold_expired": "hold_expired",
        "hold_lost": "hold_expired",
        "price_changed": "price_changed",
        "checkout_in_progress": "in_progress",
        "busy": "busy",
    }.get(code or "", "refused" if code else "error")


@event.listens_for(Pool, "checkout")
def _connection_out(*_: Any) -> None:
    DB_POOL_IN_USE.inc()


@event.listens_for(Pool, "checkin")
def _connection_back(*_: Any) -> None:
    DB_POOL_IN_USE.dec()
