"""JSON logs carrying a request id, and Prometheus metrics (multiprocess under the server)."""

from __future__ import annotations

import atexit
import hmac
import logging
import os
import re
import sys
import uuid
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_flask_exporter import PrometheusMetrics
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdFilter(logging.Filter):
    """Puts the current request's id (or '-') on every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def configure_logging(app: Flask) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if app.config["LOG_JSON"]:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
        )
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_bilheteria", False)]:
        root.removeHandler(old)
    handler._bilheteria = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])

    @app.before_request
    def assign_request_id() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex

    @app.after_request
    def echo_request_id(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "-")
        return response


def configure_metrics(app: Flask) -> Any:
    """Per-endpoint HTTP metrics (prometheus_flask_exporter), the business's (app/metrics.py)
    and the scrape-time gauges (services/metrics_state.py) at /metrics, behind METRICS_TOKEN
    (config.py). Per process in development and tests; summed across the server's worker
    processes when PROMETHEUS_MULTIPROC_DIR names a directory (set by `make serve`)."""
    from app import metrics as business
    from app.services.metrics_state import StateCollector

    registry = CollectorRegistry()
    exporter = PrometheusMetrics(
        app, path=None, registry=registry, group_by="endpoint", default_labels={}
    )
    exporter.info("bilheteria_info", "Bilheteria application", version="0.1.0")
    app.extensions[REQUEST_METRICS] = _request_metrics(registry)
    business.register(registry)
    business.initialize([app.config["DEFAULT_CURRENCY"]])
    if _multiprocess_dir():
        # The pool gauge sums live processes: a worker that stops takes its values with it.
        atexit.register(mark_process_dead, os.getpid())
    state = StateCollector(app)
    registry.register(state)

    @exporter.do_not_track()
    def prometheus_metrics() -> Response:
        refusal = _metrics_refusal(app)
        if refusal is not None:
            return refusal
        if _multiprocess_dir():
            scraped = CollectorRegistry()
            MultiProcessCollector(scraped)
            scraped.register(state)
        else:
            scraped = registry
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encode(scraped), headers={"Content-Type": content_type})

    app.add_url_rule("/metrics", "prometheus_metrics", prometheus_metrics)
    return exporter


#: Where configure_metrics leaves prometheus_flask_exporter's request metrics for the answers
#: given before Flask (app/views/fast_path.py).
REQUEST_METRICS = "bilheteria.request_metrics"


@dataclass(frozen=True)
class RequestMetrics:
    """prometheus_flask_exporter's request duration (by method, endpoint and status) and request
    count (by method and status), so that an answer given before Flask is counted as the app
    would have counted it: dashboards and alerts see every request."""

    duration: Histogram
    total: Counter

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        self.duration.labels(method=method, endpoint=endpoint, status=status).observe(seconds)
        self.total.labels(method=method, status=status).inc()


def _request_metrics(registry: CollectorRegistry) -> RequestMetrics:
    # The exporter keeps no handle on its metrics: they are found by name in the registry
    # (tests/integration/test_fast_path_metrics.py fails if an upgrade renames them).
    collectors = registry._names_to_collectors  # noqa: SLF001
    return RequestMetrics(
        collectors["flask_http_request_duration_seconds"], collectors["flask_http_request_total"]
    )


def _multiprocess_dir() -> str | None:
    found = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return found if found and os.path.isdir(found) else None


def _metrics_refusal(app: Flask) -> Response | None:
    """Why this request may not read /metrics, as the answer (None: it may)."""
    token = app.config["METRICS_TOKEN"]
    if token:
        sent = request.headers.get("Authorization", "")
        scheme, _, credentials = sent.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credentials.encode(), token.encode()):
            return None
        return Response(
            "Send the metrics token: Authorization: Bearer <METRICS_TOKEN>\n",
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            mimetype="text/plain",
        )
    if app.config["APP_ENV"] != "production" and request.remote_addr in _LOOPBACK:
        return None
    return Response("Not Found\n", status=404, mimetype="text/plain")


_LOOPBACK = frozenset({"127.0.0.1", "::1"})
