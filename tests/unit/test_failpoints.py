"""app/failpoints.py: off without its environment, what ``BILHETERIA_FAILPOINTS`` may say, and
once-only, armed-only firing with ``BILHETERIA_FAILPOINTS_DIR``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app import failpoints
from app.failpoints import DIR_ENV, ENV, Action, failpoint, parse


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The sleeps failpoints asked for (none really taken)."""
    calls: list[float] = []
    monkeypatch.setattr(failpoints.time, "sleep", calls.append)
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv(DIR_ENV, raising=False)
    return calls


def test_a_spec_names_failpoints_and_their_sleeps() -> None:
    assert parse("settlement.after_day=sleep:40, payouts.after_payout=sleep:0.5,") == {
        "settlement.after_day": Action(40.0),
        "payouts.after_payout": Action(0.5),
    }
    assert parse("") == {}


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("payouts.after_payout", "is not name=action"),
        ("Payouts=sleep:1", "is not name=action"),
        ("=sleep:1", "is not name=action"),
        ("a=sleep:1,a=sleep:2", "named twice"),
        ("a=crash", "unknown action"),
        ("a=sleep", "0 to 3600 seconds"),
        ("a=sleep:-1", "0 to 3600 seconds"),
        ("a=sleep:soon", "0 to 3600 seconds"),
        ("a=sleep:nan", "0 to 3600 seconds"),
    ],
)
def test_a_wrong_spec_says_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse(spec)


def test_without_the_environment_a_failpoint_does_nothing(slept: list[float]) -> None:
    failpoint("payouts.after_payout")
    assert slept == []


def test_without_a_folder_a_named_failpoint_acts_every_time_and_others_never(
    slept: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "payouts.after_payout=sleep:3")
    failpoint("payouts.after_payout")
    failpoint("settlement.after_day")
    failpoint("payouts.after_payout")
    assert slept == [3.0, 3.0]


def test_with_a_folder_it_acts_once_only_once_armed_and_names_its_process(
    slept: list[float], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "armed"
    monkeypatch.setenv(ENV, "settlement.after_day=sleep:7,payouts.after_payout=sleep:9")
    monkeypatch.setenv(DIR_ENV, str(folder))
    failpoint("settlement.after_day")  # the folder is not there yet: not armed
    assert slept == [] and not folder.exists()

    folder.mkdir()
    failpoint("settlement.after_day")
    failpoint("settlement.after_day")  # the task delivered again goes on
    failpoint("payouts.after_payout")
    assert slept == [7.0, 9.0]
    assert (folder / "settlement.after_day").read_text() == str(os.getpid())
    assert (folder / "payouts.after_payout").read_text() == str(os.getpid())


def test_a_wrong_spec_fails_where_the_failpoint_is_reached(
    slept: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "payouts.after_payout=sleep:forever")
    with pytest.raises(ValueError, match="0 to 3600 seconds"):
        failpoint("payouts.after_payout")
