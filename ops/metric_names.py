"""The metric contract: every series name the dashboards and alert rules may query, by the
Prometheus job that exports it. One list, read by the dashboard and rule tests (no query names
anything else) and by whatever test checks that the app and the workers export these names.

Names are the series as Prometheus stores them: a histogram appears as its ``_bucket``, ``_sum``
and ``_count`` series, a counter with its ``_total`` suffix.
"""

from __future__ import annotations

# job "bilheteria-web": the app's /metrics (bearer token METRICS_TOKEN)
WEB: frozenset[str] = frozenset(
    {
        # prometheus_flask_exporter, grouped by endpoint
        "flask_http_request_duration_seconds_bucket",
        "flask_http_request_duration_seconds_sum",
        "flask_http_request_duration_seconds_count",
        "flask_http_request_total",
        "flask_http_request_exceptions_total",
        # sales
        "bilheteria_tickets_sold_total",
        "bilheteria_revenue_cents_total",
        "bilheteria_holds_total",
        "bilheteria_seat_conflicts_total",
        "bilheteria_checkout_seconds_bucket",
        "bilheteria_checkout_seconds_sum",
        "bilheteria_checkout_seconds_count",
        "bilheteria_payment_declines_total",
        "bilheteria_refunds_total",
        "bilheteria_refunded_cents_total",
        "bilheteria_waiting_room_joined_total",
        "bilheteria_waiting_room_admitted_total",
        "bilheteria_waiting_room_length",
        "bilheteria_waiting_room_wait_seconds",
        "bilheteria_waiting_room_rate_per_minute",
        # gate
        "bilheteria_scans_total",
        "bilheteria_checkin_store_up",
        "bilheteria_scan_log_backlog",
        # money
        "bilheteria_settlement_mismatches_open",
        "bilheteria_payouts_pending",
        "bilheteria_payouts_pending_cents",
        "bilheteria_payouts_paid_total",
        "bilheteria_payouts_paid_cents_total",
        "bilheteria_settlement_runs_total",
        # platform
        "bilheteria_db_pool_connections_in_use",
        "bilheteria_celery_queue_length",
        "bilheteria_celery_queue_oldest_age_seconds",
    }
)

# job "bilheteria-worker": each Celery worker's own /metrics (WORKER_METRICS_PORT)
WORKER: frozenset[str] = frozenset(
    {
        "bilheteria_celery_task_runs_total",
        "bilheteria_celery_task_seconds_bucket",
        "bilheteria_celery_task_seconds_sum",
        "bilheteria_celery_task_seconds_count",
        # the beat's sweeps: reports' and refunds' tasks sent again (the broker lost them)
        "bilheteria_tasks_resent_total",
    }
)

# job "postgres": Debian's prometheus-postgres-exporter (the pg_stat_database_* the dashboards use)
POSTGRES_EXPORTER: frozenset[str] = frozenset(
    {
        "pg_up",
        "pg_stat_database_numbackends",
        "pg_stat_database_xact_commit",
        "pg_stat_database_xact_rollback",
        "pg_stat_activity_count",
    }
)

# job "redis": Debian's prometheus-redis-exporter
REDIS_EXPORTER: frozenset[str] = frozenset(
    {
        "redis_up",
        "redis_connected_clients",
        "redis_memory_used_bytes",
        "redis_commands_processed_total",
    }
)

# written by Prometheus itself for every target it scrapes
SCRAPE: frozenset[str] = frozenset({"up"})

BY_JOB: dict[str, frozenset[str]] = {
    "bilheteria-web": WEB,
    "bilheteria-worker": WORKER,
    "postgres": POSTGRES_EXPORTER,
    "redis": REDIS_EXPORTER,
}

ALL: frozenset[str] = WEB | WORKER | POSTGRES_EXPORTER | REDIS_EXPORTER | SCRAPE
