"""gunicorn settings for `make serve`: several workers, metrics aggregated across them."""

import multiprocessing
import os

from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

bind = os.environ.get("BIND", "127.0.0.1:8000")
# One process per core with a few threads: more threads only fight over the GIL and hold more
# transactions open at once (bench/onsale.py on 2 cores: 2 x 4 sold 114 tickets/s with 18.5 ms
# of CPU per ticket, 3 x 8 about 90 with 22 ms; bench/checkin.py: 2 x 4 also best). Threads
# still cover the wait on a slow card processor.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
accesslog = None
timeout = 30


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn hook signature
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
