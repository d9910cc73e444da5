"""A clock a test moves by hand, to stand in for ``time.monotonic`` where code measures ages."""

from __future__ import annotations


class Clock:
    """Starts at 1000.0; ``clock.now += seconds`` moves it on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
