"""Failpoints: named places in a long batch where a test makes the process stop a while, so that
it can kill the process there (tests/cluster/test_worker_dies.py kills a Celery worker in the
middle of a settlement run and of a payout run, which are otherwise over in milliseconds).

Off unless the process's environment names them, as a deploy never does::

    BILHETERIA_FAILPOINTS="settlement.after_day=sleep:40,payouts.after_payout=sleep:40"
    BILHETERIA_FAILPOINTS_DIR=/tmp/some/folder

``BILHETERIA_FAILPOINTS``: ``name=action`` pairs separated by commas; the one action is
``sleep:<seconds>``. Without ``BILHETERIA_FAILPOINTS_DIR`` a named failpoint acts every time it
is reached. With it, a failpoint is *armed* only while that folder exists (the test creates it
once its data is ready: a run before then passes), and acts *once* across every process: the
first process to reach it creates ``<folder>/<name>`` holding its pid (which tells the test
which process to kill), and every later pass finds that file and goes on (the task the broker
delivers again after the kill runs to its end).

Unset, a failpoint costs an environment lookup.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ENV = "BILHETERIA_FAILPOINTS"
DIR_ENV = "BILHETERIA_FAILPOINTS_DIR"
_NAME = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*")


@dataclass(frozen=True)
class Action:
    """What a failpoint does when it acts: stop the process for ``seconds``."""

    seconds: float

    def run(self) -> None:
        time.sleep(self.seconds)


@lru_cache(maxsize=8)
def parse(spec: str) -> dict[str, Action]:
    """The failpoints ``spec`` names (``BILHETERIA_FAILPOINTS``'s syntax), by name; ValueError
    saying what is wrong with it."""
    found: dict[str, Action] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, equals, action = (piece.strip() for piece in item.partition("="))
        if not equals or not _NAME.fullmatch(name):
            raise ValueError(f"{ENV}: {item!r} is not name=action (a name like payouts.after_one)")
        if name in found:
            raise ValueError(f"{ENV}: {name} is named twice")
        kind, _, argument = action.partition(":")
        if kind != "sleep":
            raise ValueError(f"{ENV}: {name}: unknown action {action!r} (sleep:<seconds>)")
        try:
            seconds = float(argument)
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= 3600:
            raise ValueError(f"{ENV}: {name}: sleep takes 0 to 3600 seconds, not {argument!r}")
        found[name] = Action(seconds)
    return found


def failpoint(name: str) -> None:
    """Act as ``BILHETERIA_FAILPOINTS`` says at ``name``: nothing, unless the environment names
    it (and, with ``BILHETERIA_FAILPOINTS_DIR``, it is armed and has not acted yet)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    action = parse(spec).get(name)
    if action is not None and _claim(name):
        action.run()


def _claim(name: str) -> bool:
    """Whether this process is the one to act at ``name`` (see the module's docstring)."""
    folder = os.environ.get(DIR_ENV)
    if not folder:
        return True
    try:
        marker = os.open(Path(folder) / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except (FileExistsError, FileNotFoundError):  # acted already, or not armed
        return False
    with os.fdopen(marker, "w") as out:
        out.write(str(os.getpid()))
    return True
