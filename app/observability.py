"""JSON logs carrying a request id, and Prometheus metrics (multiprocess under the server)."""

from __future__ import annotations

import logging
import os
import re
import sys
import uuid
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from prometheus_client import CollectorRegistry
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import MultiprocessInternalPrometheusMetrics
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
    """/metrics: per-process in development and tests; aggregated across the server's worker
    processes when PROMETHEUS_MULTIPROC_DIR names a directory (set by `make serve`)."""
    options: dict[str, Any] = {"group_by": "endpoint", "default_labels": {}}
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc_dir and os.path.isdir(multiproc_dir):
        metrics = MultiprocessInternalPrometheusMetrics(app, **options)
    else:
        metrics = PrometheusMetrics(app, registry=CollectorRegistry(), **options)
    metrics.info("bilheteria_info", "Bilheteria application", version="0.1.0")
    return metrics
