"""gunicorn settings for `make serve`: several workers, metrics aggregated across them."""

import multiprocessing
import os

from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

bind = os.environ.get("BIND", "127.0.0.1:8000")
# Requests mostly wait on PostgreSQL: a few processes with several threads each serve best
# (bench/onsale.py on 2 cores: 3 x 8 sold 40 % more per second than 4 x 4 or 6 x 2).
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
accesslog = None
timeout = 30


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn hook signature
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
