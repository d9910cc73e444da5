"""Bilheteria's Grafana dashboards, built with grafana-foundation-sdk: on-sale, gate, money and
platform. ``python -m ops.grafana.dashboards`` (or ``make dashboards``) rewrites
``ops/grafana/dashboards/*.json``, which Grafana loads through ``provisioning/``; the unit test
``tests/unit/test_grafana_dashboards.py`` fails while the committed JSON differs from what this
module builds, or while a query names a series outside ``ops/metric_names.py``.

Every panel queries the data source of the ``datasource`` variable, whose default is the
provisioned Prometheus (uid ``prometheus``). Queries use Grafana's ``$__rate_interval`` (rates)
and ``$__range`` (totals over the time picked); ``panel_queries(window=...)`` replaces both so
each query can be sent to Prometheus as it is. Money series are cents: panels divide by 100 for
display, in the series' own currency (the ``currency`` label).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import (
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import Dashboard as DashboardModel
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableOption,
)

DATASOURCE_UID = "prometheus"
DATASOURCE_VARIABLE = "datasource"
DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
TAG = "bilheteria"
# Grafana's own variables the queries use, replaced by panel_queries(window=...)
RANGE_VARIABLES = ("$__rate_interval", "$__range")

HTTP_BUCKET = "flask_http_request_duration_seconds_bucket"

_DATASOURCE = DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")
_QUANTILES = (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"))
_UP_DOWN = [
    ValueMap(
        {
            "0": ValueMappingResult(text="down", color="red", index=0),
            "1": ValueMappingResult(text="up", color="green", index=1),
        }
    )
]

# Stat colours: (from value, colour), the first from minus infinity
Steps = tuple[tuple[float | None, str], ...]
NEUTRAL: Steps = ((None, "green"),)
AT_LEAST_ONE: Steps = ((None, "red"), (1, "green"))


def red_from(value: float) -> Steps:
    return ((None, "green"), (value, "red"))


# ---------------------------------------------------------------------------------------------
# Building blocks


def query(expr: str, legend: str = "__auto") -> prometheus.Dataquery:
    """One PromQL target; ``legend`` is Grafana's legend format (``{{label}}``)."""
    return prometheus.Dataquery().expr(expr).legend_format(legend)


def quantiles(
    bucket: str, by: str = "", top: int | None = None, only: tuple[str, ...] = ()
) -> list[prometheus.Dataquery]:
    """p50, p95 and p99 (or ``only`` those) of a histogram's ``_bucket`` series, one line per
    value of ``by``; with ``top``, only the ``top`` highest lines of each quantile."""
    labels = f"le, {by}" if by else "le"
    legend = f"{{{{{by}}}}} " if by else ""
    targets = []
    for name, q in _QUANTILES:
        if only and name not in only:
            continue
        expr = f"histogram_quantile({q}, sum by ({labels}) (rate({bucket}[$__rate_interval])))"
        if top is not None:
            expr = f"topk({top}, {expr})"
        targets.append(query(expr, f"{legend}{name}"))
    return targets


def lettered(targets: list[prometheus.Dataquery]) -> list[prometheus.Dataquery]:
    """The panel's targets with their refIds A, B, C..., which Grafana needs unique."""
    return [target.ref_id(chr(ord("A") + n)) for n, target in enumerate(targets)]


def graph(
    title: str,
    description: str,
    targets: list[prometheus.Dataquery],
    unit: str = "short",
    width: int = 12,
    stacked: bool = False,
) -> timeseries.Panel:
    """A time series panel, 8 rows high, legend as a table with the last and max values."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(_DATASOURCE)
        .targets(lettered(targets))
        .unit(unit)
        .min(0)
        .height(8)
        .span(width)
        .fill_opacity(10)
        .legend(
            VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if stacked:
        panel = panel.stacking(StackingConfig().mode(common.StackingMode.NORMAL))
    return panel


def single(
    title: str,
    description: str,
    targets: list[prometheus.Dataquery],
    unit: str = "short",
    width: int = 6,
    steps: Steps = NEUTRAL,
    up_down: bool = False,
) -> stat.Panel:
    """A stat panel (last value), 4 rows high, coloured by ``steps``; ``up_down`` shows 1 and 0
    as "up" and "down" on a green or red background."""
    if up_down:
        steps = AT_LEAST_ONE
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(_DATASOURCE)
        .targets(lettered(targets))
        .unit(unit)
        .height(4)
        .span(width)
        .color_mode(
            common.BigValueColorMode.BACKGROUND if up_down else common.BigValueColorMode.VALUE
        )
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(
            dash.ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(value=value, color=color) for value, color in steps])
        )
    )
    if up_down:
        panel = panel.mappings(_UP_DOWN)
    return panel


def dashboard(uid: str, title: str, description: str) -> dash.Dashboard:
    """A dashboard with the data source variable, shared crosshair, the last 6 hours, refreshed
    every 30 s, and a menu of the other Bilheteria dashboards."""
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .timezone("browser")
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(
            dash.DatasourceVariable(DATASOURCE_VARIABLE)
            .label("Data source")
            .type("prometheus")
            .current(VariableOption(text="Prometheus", value=DATASOURCE_UID, selected=True))
        )
        .link(
            dash.DashboardLink("Bilheteria")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


def rate(series: str, by: str = "", selector: str = "", scale: str = "") -> str:
    """``sum by (by) (rate(series{selector}[$__rate_interval]))``, optionally scaled."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({series}{selector}[$__rate_interval])){scale}"


def total(series: str, by: str = "", selector: str = "", scale: str = "") -> str:
    """What a counter added over the time picked, optionally scaled."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (increase({series}{selector}[$__range])){scale}"


# ---------------------------------------------------------------------------------------------
# The dashboards


def on_sale() -> DashboardModel:
    return (
        dashboard(
            "bilheteria-onsale",
            "Bilheteria / On-sale",
            "Sales, holds, seat conflicts, checkout, declines and waiting rooms.",
        )
        .with_row(dash.Row("Sales"))
        .with_panel(
            single(
                "Tickets sold",
                "Tickets sold in the time picked, by currency.",
                [query(total("bilheteria_tickets_sold_total", "currency"), "{{currency}}")],
            )
        )
        .with_panel(
            single(
                "Revenue",
                "Gross charged in the time picked, in each currency's units (cents / 100).",
                [
                    query(
                        total("bilheteria_revenue_cents_total", "currency", scale=" / 100"),
                        "{{currency}}",
                    )
                ],
            )
        )
        .with_panel(
            single(
                "Sales now",
                "Sales rate now, every currency.",
                [query(rate("bilheteria_tickets_sold_total"), "tickets/s")],
            )
        )
        .with_panel(
            single(
                "Seat conflicts now",
                "Holds refused (409) because the seat was taken or the section sold out.",
                [query(rate("bilheteria_seat_conflicts_total"), "409/s")],
            )
        )
        .with_panel(
            graph(
                "Tickets sold per second",
                "Tickets sold per second, by currency.",
                [query(rate("bilheteria_tickets_sold_total", "currency"), "{{currency}}")],
            )
        )
        .with_panel(
            graph(
                "Revenue per minute",
                "Gross charged per minute, in each currency's units (cents / 100).",
                [
                    query(
                        rate("bilheteria_revenue_cents_total", "currency", scale=" * 60 / 100"),
                        "{{currency}}",
                    )
                ],
            )
        )
        .with_row(dash.Row("Holds"))
        .with_panel(
            graph(
                "Held places per second, by outcome",
                "Places held (created) and how holds ended: converted to tickets, expired, "
                "released by the customer.",
                [query(rate("bilheteria_holds_total", "outcome"), "{{outcome}}")],
            )
        )
        .with_panel(
            graph(
                "Seat conflicts per second, by path",
                "Holds refused with 409 because the places were taken or sold out: "
                "full = the API's hold, fast = the hold fast path answering from memory.",
                [query(rate("bilheteria_seat_conflicts_total", "path"), "{{path}}")],
            )
        )
        .with_row(dash.Row("Checkout"))
        .with_panel(
            graph(
                "Checkout latency, by outcome",
                "p50, p95 and p99 of a checkout's duration (the card charge included).",
                quantiles("bilheteria_checkout_seconds_bucket", "outcome"),
                unit="s",
                width=24,
            )
        )
        .with_panel(
            graph(
                "Checkouts per second, by outcome",
                "paid, declined, hold_expired, price_changed, in_progress (a retry while the "
                "first attempt runs), error.",
                [query(rate("bilheteria_checkout_seconds_count", "outcome"), "{{outcome}}")],
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Payment declines per second, by reason",
                "The acquirer's decline code (bounded; anything else is 'other').",
                [query(rate("bilheteria_payment_declines_total", "reason"), "{{reason}}")],
                stacked=True,
            )
        )
        .with_row(dash.Row("Waiting room"))
        .with_panel(
            graph(
                "Waiting room length, by event",
                "Buyers waiting in each open waiting room.",
                [query("sum by (event) (bilheteria_waiting_room_length)", "event {{event}}")],
            )
        )
        .with_panel(
            graph(
                "Waiting room joins and admissions per second",
                "Buyers taking a place in line, and buyers let in who held places in their turn.",
                [
                    query(rate("bilheteria_waiting_room_joined_total"), "joined/s"),
                    query(rate("bilheteria_waiting_room_admitted_total"), "admitted/s"),
                ],
            )
        )
        .with_panel(
            graph(
                "Waiting room wait and rate, by event",
                "How long the last buyer in line waits (seconds), and the buyers let in per"
                " minute that the event's waiting room is set to.",
                [
                    query(
                        "max by (event) (bilheteria_waiting_room_wait_seconds)",
                        "wait (s) event {{event}}",
                    ),
                    query(
                        "max by (event) (bilheteria_waiting_room_rate_per_minute)",
                        "per minute event {{event}}",
                    ),
                ],
            )
        )
        .build()
    )


def gate() -> DashboardModel:
    refused = rate("bilheteria_scans_total", selector='{result!="valid"}')
    return (
        dashboard(
            "bilheteria-gate",
            "Bilheteria / Gate",
            "Check-in scans by result and path, the scan log backlog, the check-in stores.",
        )
        .with_panel(
            single(
                "Check-in store",
                "Whether the app reaches each check-in store (Redis, the database).",
                [query("min by (store) (bilheteria_checkin_store_up)", "{{store}}")],
                width=8,
                up_down=True,
            )
        )
        .with_panel(
            single(
                "Scan log backlog now",
                "Scans logged in Redis not yet written to the database; it should drain "
                "within a minute or two.",
                [query("max(bilheteria_scan_log_backlog)", "records")],
                width=8,
                steps=red_from(1000),
            )
        )
        .with_panel(
            single(
                "Scans now",
                "Every scan answered, all results and paths.",
                [query(rate("bilheteria_scans_total"), "scans/s")],
                width=8,
            )
        )
        .with_panel(
            graph(
                "Scans per second, by result",
                "valid, already_used, not_inside, revoked, unknown, wrong_event, doors_closed...",
                [query(rate("bilheteria_scans_total", "result"), "{{result}}")],
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Scans per second, by path",
                "fast = the device API's Redis fast path; redis / database = the full path "
                "with that store; offline = scans uploaded by devices that were offline.",
                [query(rate("bilheteria_scans_total", "path"), "{{path}}")],
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Refused scans, share",
                "Share of scans not admitted (any result but valid).",
                [
                    query(
                        f"{refused} / {rate('bilheteria_scans_total')}",
                        "refused",
                    )
                ],
                unit="percentunit",
            )
        )
        .with_panel(
            graph(
                "Scan log backlog",
                "Scans logged in Redis not yet written to the database.",
                [query("max(bilheteria_scan_log_backlog)", "records")],
            )
        )
        .build()
    )


def money() -> DashboardModel:
    return (
        dashboard(
            "bilheteria-money",
            "Bilheteria / Money",
            "Settlement against the acquirer's reports, payouts to partners, refunds.",
        )
        .with_row(dash.Row("Settlement"))
        .with_panel(
            single(
                "Settlement mismatches open",
                "Days whose acquirer report disagrees with the ledger and nobody resolved yet.",
                [query("max(bilheteria_settlement_mismatches_open)", "open")],
                steps=red_from(1),
            )
        )
        .with_panel(
            single(
                "Settlement runs",
                "Runs in the time picked, by result (matched or mismatch).",
                [query(total("bilheteria_settlement_runs_total", "result"), "{{result}}")],
                width=6,
            )
        )
        .with_panel(
            graph(
                "Settlement mismatches open, over time",
                "Open mismatches over time.",
                [query("max(bilheteria_settlement_mismatches_open)", "open")],
            )
        )
        .with_row(dash.Row("Payouts"))
        .with_panel(
            single(
                "Payouts pending",
                "Payouts requested or approved, not paid yet.",
                [query("max(bilheteria_payouts_pending)", "pending")],
            )
        )
        .with_panel(
            single(
                "Payouts pending, amount",
                "Amount of the pending payouts, in each currency's units.",
                [
                    query(
                        "max by (currency) (bilheteria_payouts_pending_cents) / 100",
                        "{{currency}}",
                    )
                ],
            )
        )
        .with_panel(
            single(
                "Payouts paid",
                "Payouts paid in the time picked.",
                [query(total("bilheteria_payouts_paid_total"), "paid")],
            )
        )
        .with_panel(
            single(
                "Paid out, amount",
                "Amount paid out in the time picked, in each currency's units.",
                [
                    query(
                        total("bilheteria_payouts_paid_cents_total", "currency", scale=" / 100"),
                        "{{currency}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Payouts pending, over time",
                "Pending payouts over time: count and amount (currency units).",
                [
                    query("max(bilheteria_payouts_pending)", "pending"),
                    query(
                        "max by (currency) (bilheteria_payouts_pending_cents) / 100",
                        "amount {{currency}}",
                    ),
                ],
                width=24,
            )
        )
        .with_row(dash.Row("Refunds"))
        .with_panel(
            single(
                "Refunds, by who",
                "Refunds in the time picked, by who caused them: customer, partner, admin, "
                "event_cancelled, system (a charge that succeeded after its hold was lost).",
                [query(total("bilheteria_refunds_total", "by"), "{{by}}")],
                width=12,
            )
        )
        .with_panel(
            single(
                "Refunded, amount",
                "Amount refunded in the time picked, in each currency's units.",
                [
                    query(
                        total("bilheteria_refunded_cents_total", "currency", scale=" / 100"),
                        "{{currency}}",
                    )
                ],
                width=12,
            )
        )
        .with_panel(
            graph(
                "Refunds per hour, by who",
                "Refund rate, per hour.",
                [query(rate("bilheteria_refunds_total", "by", scale=" * 3600"), "{{by}}")],
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Refunded per hour, amount",
                "Amount refunded per hour, in each currency's units.",
                [
                    query(
                        rate("bilheteria_refunded_cents_total", "currency", scale=" * 3600 / 100"),
                        "{{currency}}",
                    )
                ],
            )
        )
        .build()
    )


def platform() -> DashboardModel:
    http_5xx = rate("flask_http_request_total", selector='{status=~"5.."}')
    return (
        dashboard(
            "bilheteria-platform",
            "Bilheteria / Platform",
            "HTTP, Celery workers and queues, PostgreSQL and Redis.",
        )
        .with_row(dash.Row("HTTP"))
        .with_panel(
            graph(
                "Requests per second, by status",
                "Every request the app answered.",
                [query(rate("flask_http_request_total", "status"), "{{status}}")],
                unit="reqps",
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "5xx ratio",
                "Share of requests answered with a 5xx; exceptions per second raised by views.",
                [
                    query(
                        f"({http_5xx} or vector(0)) / {rate('flask_http_request_total')}",
                        "5xx share",
                    ),
                    query(
                        f"({rate('flask_http_request_exceptions_total')} or vector(0))"
                        f" / {rate('flask_http_request_total')}",
                        "unhandled exceptions share",
                    ),
                ],
                unit="percentunit",
            )
        )
        .with_panel(
            graph(
                "Latency, all endpoints",
                "p50, p95 and p99 of every request's duration.",
                quantiles(HTTP_BUCKET),
                unit="s",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Latency p99, slowest endpoints",
                "The 10 endpoints with the highest p99.",
                quantiles(HTTP_BUCKET, "endpoint", top=10, only=("p99",)),
                unit="s",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Latency p95 and p50, slowest endpoints",
                "The 10 endpoints with the highest p95, and the 10 with the highest p50.",
                quantiles(HTTP_BUCKET, "endpoint", top=10, only=("p95", "p50")),
                unit="s",
                width=8,
            )
        )
        .with_row(dash.Row("Celery"))
        .with_panel(
            single(
                "Workers up",
                "Celery workers Prometheus scrapes successfully.",
                [query('sum(up{job="bilheteria-worker"})', "workers")],
                steps=AT_LEAST_ONE,
                width=6,
            )
        )
        .with_panel(
            single(
                "Oldest queued task",
                "Age of the oldest message waiting in a queue.",
                [query("max(bilheteria_celery_queue_oldest_age_seconds)", "oldest")],
                unit="s",
                steps=red_from(300),
                width=6,
            )
        )
        .with_panel(
            graph(
                "Queue length",
                "Messages waiting in each broker queue.",
                [query("max by (queue) (bilheteria_celery_queue_length)", "{{queue}}")],
                width=6,
            )
        )
        .with_panel(
            graph(
                "Oldest message age",
                "Age of the oldest message of each queue (0 when empty).",
                [
                    query(
                        "max by (queue) (bilheteria_celery_queue_oldest_age_seconds)",
                        "{{queue}}",
                    )
                ],
                unit="s",
                width=6,
            )
        )
        .with_panel(
            graph(
                "Task runs per second, by task",
                "Tasks that succeeded.",
                [
                    query(
                        rate("bilheteria_celery_task_runs_total", "task", '{state="succeeded"}'),
                        "{{task}}",
                    )
                ],
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Task failures and retries per second, by task",
                "Tasks that failed or were retried.",
                [
                    query(
                        rate(
                            "bilheteria_celery_task_runs_total",
                            "task, state",
                            '{state=~"failed|retried"}',
                        ),
                        "{{task}} {{state}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Task duration, by task",
                "p50, p95 and p99 of each task's run time.",
                quantiles("bilheteria_celery_task_seconds_bucket", "task"),
                unit="s",
            )
        )
        .with_panel(
            graph(
                "Tasks sent again, by task",
                "Report and refund tasks the beat's sweeps sent again because their work had not"
                " begun LOST_TASK_GRACE_MINUTES after they were sent: the broker lost them, or"
                " the queue was that far behind (docs/RUNBOOK.md, stuck reports and refunds).",
                [
                    query(
                        "sum by (task) (increase(bilheteria_tasks_resent_total[$__rate_interval]))",
                        "{{task}}",
                    )
                ],
            )
        )
        .with_row(dash.Row("PostgreSQL"))
        .with_panel(
            single(
                "PostgreSQL",
                "Whether postgres_exporter reaches the database.",
                [query("min(pg_up)", "pg_up")],
                up_down=True,
            )
        )
        .with_panel(
            single(
                "App pool connections in use",
                "Connections the app's processes hold from their pools, summed.",
                [query("sum(bilheteria_db_pool_connections_in_use)", "in use")],
                width=6,
            )
        )
        .with_panel(
            single(
                "Backends",
                "Connections to the database, every client.",
                [query("sum(pg_stat_database_numbackends)", "backends")],
                width=6,
            )
        )
        .with_panel(
            single(
                "Transactions per second",
                "Commits and rollbacks, every database.",
                [
                    query(
                        f"{rate('pg_stat_database_xact_commit')}"
                        f" + {rate('pg_stat_database_xact_rollback')}",
                        "tx/s",
                    )
                ],
                width=6,
            )
        )
        .with_panel(
            graph(
                "PostgreSQL connections, by state",
                "Server connections by state (pg_stat_activity) and the app's pool in use.",
                [
                    query("sum by (state) (pg_stat_activity_count)", "{{state}}"),
                    query("sum(bilheteria_db_pool_connections_in_use)", "app pool in use"),
                ],
            )
        )
        .with_panel(
            graph(
                "PostgreSQL transactions per second",
                "Commits and rollbacks, every database.",
                [
                    query(rate("pg_stat_database_xact_commit"), "commits"),
                    query(rate("pg_stat_database_xact_rollback"), "rollbacks"),
                ],
            )
        )
        .with_row(dash.Row("Redis"))
        .with_panel(
            single(
                "Redis",
                "Whether redis_exporter reaches Redis.",
                [query("min(redis_up)", "redis_up")],
                up_down=True,
            )
        )
        .with_panel(
            single(
                "Redis memory used",
                "Memory Redis uses (the broker, check-in data, rate limits).",
                [query("max(redis_memory_used_bytes)", "used")],
                unit="bytes",
            )
        )
        .with_panel(
            single(
                "Redis clients",
                "Clients connected to Redis.",
                [query("sum(redis_connected_clients)", "clients")],
            )
        )
        .with_panel(
            single(
                "Redis commands per second",
                "Commands Redis processed.",
                [query(rate("redis_commands_processed_total"), "ops/s")],
                unit="ops",
            )
        )
        .with_panel(
            graph(
                "Redis memory used, over time",
                "Memory Redis uses over time.",
                [query("max(redis_memory_used_bytes)", "used")],
                unit="bytes",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Redis clients, over time",
                "Clients connected to Redis.",
                [query("sum(redis_connected_clients)", "clients")],
                width=8,
            )
        )
        .with_panel(
            graph(
                "Redis commands per second, over time",
                "Commands Redis processed per second.",
                [query(rate("redis_commands_processed_total"), "ops/s")],
                unit="ops",
                width=8,
            )
        )
        .build()
    )


# ---------------------------------------------------------------------------------------------
# Files and queries

# file stem under dashboards/ -> the function that builds it
DASHBOARDS: dict[str, Callable[[], DashboardModel]] = {
    "onsale": on_sale,
    "gate": gate,
    "money": money,
    "platform": platform,
}


class PanelQuery(NamedTuple):
    dashboard: str  # the dashboard's title
    panel: str  # the panel's title
    expr: str


def render(model: DashboardModel) -> str:
    """The dashboard as Grafana's JSON, panels numbered in order, keys sorted (stable diffs)."""
    data = json.loads(json.dumps(model, cls=JSONEncoder))
    for number, panel in enumerate(_panels(data), start=1):
        panel["id"] = number
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """Every dashboard's file name and JSON text, as ``write`` puts them under dashboards/."""
    return {f"{stem}.json": render(build()) for stem, build in DASHBOARDS.items()}


def write(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    """Rewrites the dashboards' JSON files; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in rendered().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def panel_queries(window: str | None = None) -> list[PanelQuery]:
    """Every (dashboard title, panel title, expr) of the dashboards, in order. With ``window``
    (a PromQL duration such as ``"1m"``), Grafana's ``$__rate_interval`` and ``$__range`` are
    replaced by it, so each expr can be evaluated by Prometheus' HTTP API as it is."""
    found = []
    for text in rendered().values():
        data = json.loads(text)
        for panel in _panels(data):
            for target in panel.get("targets", []):
                expr = target.get("expr", "")
                if window is not None:
                    for variable in RANGE_VARIABLES:
                        expr = expr.replace(variable, window)
                found.append(PanelQuery(data["title"], panel["title"], expr))
    return found


def _panels(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The dashboard's panels, rows included, and the panels inside collapsed rows."""
    for panel in data.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def main() -> None:
    for path in write():
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)


if __name__ == "__main__":
    sys.exit(main())
