"""/metrics under the production server (app/server.py) sums every worker process's counts
(prometheus multiprocess mode)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.database import database_url_for_tests

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TOKEN = "scrape-token-for-server-metrics"


def _get(url: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback only
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
        return response.read().decode()


def _status(url: str, token: str | None = None) -> int:
    try:
        _get(url, token)
    except urllib.error.HTTPError as error:
        error.close()  # an open answer keeps its connection, and the server waits for it
        return error.code
    return 200


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_tests(),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "1",
        "APP_ENV": "production",
        "SECRET_KEY": "test-secret-key-for-server-metrics-0123456789",
        "METRICS_TOKEN": TOKEN,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.server"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                _get(base + "/healthz")
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not start")
        yield base, metrics_dir
    finally:
        process.terminate()
        process.wait(timeout=20)


def _healthz_count(metrics: str) -> float:
    match = re.search(
        r'^flask_http_request_duration_seconds_count\{[^}]*endpoint="ops.healthz"[^}]*\} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    return float(match.group(1)) if match else 0.0


def _both_workers_serving(base: str, metrics_dir: Path) -> int:
    """Send /healthz until both worker processes have answered one (a worker still importing
    the app also takes Granian's whole kill timeout to stop); returns how many were sent."""
    sent = 0
    # The fixture's probe proves one worker up; the other may still be importing the app (slower
    # on a busy machine): keep asking until both have served, for up to half a minute.
    deadline = time.monotonic() + 30
    pids: set[str] = set()
    with ThreadPoolExecutor(max_workers=8) as pool:
        while len(pids) < 2 and time.monotonic() < deadline:
            list(pool.map(lambda _: _get(base + "/healthz"), range(20)))
            sent += 20
            pids = {
                m.group(1)
                for f in metrics_dir.iterdir()
                # written at a worker's first request (unlabelled counters' files come at import)
                if (m := re.search(r"^histogram_(\d+)\.db$", f.name))
            }
            time.sleep(0.1)
    assert len(pids) >= 2, "only one worker served requests"
    return sent


def test_metrics_aggregate_across_the_servers_workers(server):
    base, metrics_dir = server
    sent = 1 + _both_workers_serving(base, metrics_dir)  # and the fixture's readiness probe
    # Whichever worker answers, it reports every worker's requests.
    for _ in range(6):
        assert _healthz_count(_get(base + "/metrics", TOKEN)) == sent


def test_metrics_need_the_token_and_sum_the_business_series(server):
    base, metrics_dir = server
    _both_workers_serving(base, metrics_dir)
    assert _status(base + "/metrics") == 401
    assert _status(base + "/metrics", "wrong-token") == 401
    body = _get(base + "/metrics", TOKEN)
    # The scrape-time gauges come once (from the scraping process), the pool's summed.
    assert len(re.findall(r"^bilheteria_settlement_mismatches_open ", body, re.MULTILINE)) == 1
    assert re.search(r'^bilheteria_checkin_store_up\{store="database"\} 1\.0$', body, re.MULTILINE)
    assert len(re.findall(r"^bilheteria_db_pool_connections_in_use ", body, re.MULTILINE)) == 1
