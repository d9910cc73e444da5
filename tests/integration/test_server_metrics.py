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


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
        return response.read().decode()


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


def test_metrics_aggregate_across_the_servers_workers(server):
    base, metrics_dir = server
    sent = 1  # the readiness probe in the fixture
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
                if (m := re.search(r"_(\d+)\.db$", f.name))
            }
            time.sleep(0.1)
    assert len(pids) >= 2, "only one worker served requests"
    # Whichever worker answers, it reports every worker's requests.
    for _ in range(6):
        assert _healthz_count(_get(base + "/metrics")) == sent
