"""A real Celery worker process on a queue of the test's own, its log in a file, and waiting for
what it does. The worker runs ``app.tasks.worker`` on the tests' database and Redis."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.database import database_url_for_tests

#: Skips a test when the session has no Redis (no REDIS_URL and no redis-server on PATH); a
#: condition read when the test runs, after the session's Redis started.
needs_redis = pytest.mark.skipif(
    "not os.environ.get('REDIS_URL')", reason="needs Redis; set REDIS_URL"
)

ROOT = Path(__file__).resolve().parents[2]

# ``python -c LAUNCHER <celery arguments>``: the ``celery`` command on ``app.tasks.worker``, the
# test's broker transport options (if any) over the app's, printed for the test to read.
LAUNCHER = """
import json, os, sys
from celery.bin.celery import main
from app.tasks.worker import celery
options = dict(celery.conf.broker_transport_options or {})
options.update(json.loads(os.environ["TEST_BROKER_TRANSPORT_OPTIONS"]))
celery.conf.broker_transport_options = options
print("broker_transport_options:", json.dumps(options), file=sys.stderr, flush=True)
sys.exit(main())
"""


class Worker:
    """One ``celery worker`` process on the test's own queue, its log in a file."""

    def __init__(
        self, queue: str, pool: str, log: Path, transport_options: dict | None = None
    ) -> None:
        self.log = log
        env = {
            **os.environ,
            "DATABASE_URL": database_url_for_tests(),
            "REDIS_URL": os.environ.get("REDIS_URL", ""),
            "FAB_UPDATE_PERMS": "false",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "LOG_JSON": "false",
            "TEST_BROKER_TRANSPORT_OPTIONS": json.dumps(transport_options or {}),
        }
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-c", LAUNCHER,
                    "-A", "app.tasks.worker", "worker",
                    "--concurrency", "1", "--pool", pool, "-Q", queue,
                    "--loglevel", "INFO", "-n", f"{queue}-{log.stem}@%h",
                    "--without-mingle", "--without-gossip", "--without-heartbeat",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def transport_options(self) -> dict:
        """The broker transport options the worker runs with (the launcher prints them)."""
        line = re.search(r"^broker_transport_options: (.*)$", self.text(), re.MULTILINE)
        assert line, self.text()[-3000:]
        return json.loads(line[1])

    def wait_until_ready(self, timeout: float = 30) -> None:
        wait_for(lambda: " ready." in self.text(), timeout, "the worker to start", self)

    def pool_process(self) -> int:
        """The pid of the (single) prefork pool process."""
        children = [
            int(stat.split()[0])
            for stat in _proc_stats()
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid
        ]
        assert len(children) == 1, children
        return children[0]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def _proc_stats() -> list[str]:
    stats = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats.append((entry / "stat").read_text())
            except OSError:  # gone meanwhile
                continue
    return stats


def wait_for(condition: Callable[[], object], timeout: float, what: str, *workers: Worker) -> None:
    """Polls ``condition`` until it holds; after ``timeout`` seconds, fails with the logs."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.log.name}\n{w.text()[-3000:]}" for w in workers)
            pytest.fail(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.02)
