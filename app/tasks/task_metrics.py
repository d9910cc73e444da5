"""Celery's side of the metrics: each task run counted and timed by task and how it ended, each
message stamped with the time it was sent (the queue's oldest age is read from it), and the
worker's own /metrics endpoint (``WORKER_METRICS_PORT``, 9540 by default; 0: none)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery.signals import (
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
)
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client import multiprocess as prometheus_multiprocess

from app import metrics
from app.services.metrics_state import stamp_sent_at

log = logging.getLogger(__name__)

DEFAULT_PORT = 9540
_STATES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}
_started: dict[str, float] = {}


def connect() -> None:
    """Connect the signal handlers (once per process: they are keyed)."""
    before_task_publish.connect(_stamp, weak=False, dispatch_uid="bilheteria-stamp")
    task_prerun.connect(_started_run, weak=False, dispatch_uid="bilheteria-prerun")
    task_postrun.connect(_ended_run, weak=False, dispatch_uid="bilheteria-postrun")
    worker_init.connect(_serve_worker_metrics, weak=False, dispatch_uid="bilheteria-serve")
    worker_process_shutdown.connect(_forget_process, weak=False, dispatch_uid="bilheteria-pid")


def _stamp(headers: dict[str, Any] | None = None, **_: Any) -> None:
    stamp_sent_at(headers)


def _started_run(task_id: str | None = None, **_: Any) -> None:
    if task_id is not None:
        _started[task_id] = time.perf_counter()


def _ended_run(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    started = _started.pop(task_id, None) if task_id is not None else None
    name = getattr(task, "name", None) or "unknown"
    metrics.TASK_RUNS.labels(name, _STATES.get(state or "", (state or "unknown").lower())).inc()
    if started is not None:
        metrics.TASK_SECONDS.labels(name).observe(time.perf_counter() - started)


def worker_registry() -> CollectorRegistry:
    """What the worker's endpoint serves: every pool process's values when
    PROMETHEUS_MULTIPROC_DIR is set (`make worker` sets it), else this process's."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        prometheus_multiprocess.MultiProcessCollector(registry)
    else:
        metrics.register(registry)
    return registry


def _serve_worker_metrics(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None:
        metrics.initialize_tasks(name for name in app.tasks if not name.startswith("celery."))
    port = int(os.environ.get("WORKER_METRICS_PORT", DEFAULT_PORT))
    if port == 0:
        return
    host = os.environ.get("WORKER_METRICS_HOST", "127.0.0.1")
    try:
        start_http_server(port, addr=host, registry=worker_registry())
    except OSError:
        log.exception("worker metrics not served: %s:%s is taken", host, port)
        return
    log.info("worker metrics on http://%s:%s/metrics", host, port)


def _forget_process(pid: int | None = None, **_: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        prometheus_multiprocess.mark_process_dead(pid or os.getpid())
