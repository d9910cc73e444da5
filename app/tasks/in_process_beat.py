"""Celery beat's schedule, run in a thread of the demo's own process (`flask demo serve`).

The demo has no broker, no worker and no `celery beat`: its tasks run in-process. This reads
the one schedule, ``celery.conf.beat_schedule`` (``init_celery``), and runs each entry's task
in-process when the entry's schedule (Celery's own ``schedule``/``crontab`` objects) says it is
due: ``Task.apply``, so the task runs as a worker runs it (in an app context, its session
removed afterwards). When it starts, every entry runs once, in the schedule's order, as a beat
that was down catches up: holds are released, the days already over are settled, then payouts
are made; from then on each entry runs on its own schedule. A task that fails is logged and
runs again at its next turn; the tasks are idempotent, as they are under a real beat.

``stop()`` ends the thread (it is a daemon too, so a killed process does not wait for it):
`flask demo serve` calls it when the server returns, before the embedded PostgreSQL stops.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from celery.schedules import BaseSchedule, maybe_schedule

log = logging.getLogger(__name__)

THREAD_NAME = "in-process-beat"
# How often the thread looks at the schedule at most and at least (seconds): a crontab entry's
# next run may be days away, and the stop event wakes the thread at once anyway.
MAX_WAIT = 60.0
MIN_WAIT = 0.05


@dataclass
class Entry:
    """One entry of the schedule: its name, task, when it runs, and when it last ran."""

    name: str
    task: str
    schedule: BaseSchedule
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    last_run_at: dt.datetime | None = None


class InProcessBeat:
    """Runs ``schedule`` (by default the Celery app's ``beat_schedule``) in a thread."""

    def __init__(self, celery: Celery, schedule: dict[str, dict[str, Any]] | None = None) -> None:
        self.celery = celery
        spec = celery.conf.beat_schedule if schedule is None else schedule
        self.entries = [
            Entry(
                name,
                entry["task"],
                maybe_schedule(entry["schedule"], app=celery),
                tuple(entry.get("args", ())),
                dict(entry.get("kwargs", {})),
            )
            for name, entry in spec.items()
        ]
        # How many times each entry ran, failed runs included.
        self.runs: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
        self._thread.start()
        log.info("in-process beat started: %s", ", ".join(e.name for e in self.entries))

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the task running now, if any; waits for the thread up to ``timeout``."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("in-process beat still running a task after %s s", timeout)
        log.info("in-process beat stopped")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run_all(self) -> None:
        """Run every entry once, in the schedule's order (the catch-up at start)."""
        for entry in self.entries:
            if self._stopping.is_set():
                return
            self._run(entry)

    def run_due(self) -> float:
        """Run the entries that are due, in the schedule's order; returns how long to wait
        before one may be due again (seconds)."""
        wait = MAX_WAIT
        for entry in self.entries:
            if self._stopping.is_set():
                break
            due, next_in = entry.schedule.is_due(entry.last_run_at or self.celery.now())
            if due:
                self._run(entry)
            wait = min(wait, next_in)
        return max(wait, MIN_WAIT)

    def _loop(self) -> None:
        self.run_all()
        while not self._stopping.wait(self.run_due()):
            pass

    def _run(self, entry: Entry) -> None:
        entry.last_run_at = self.celery.now()
        self.runs[entry.name] += 1
        try:
            self.celery.tasks[entry.task].apply(entry.args, entry.kwargs)
        except Exception:  # one task failing must not stop the others, nor the schedule
            self.failures[entry.name] += 1
            log.exception("scheduled task %s failed: it runs again at its next turn", entry.name)
