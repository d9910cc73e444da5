"""Sections this process recently found with no free spot, so that a flash crowd's late buyers
are refused from memory (app/views/holds_fast.py) instead of each costing a request's user load
and database work (bench/onsale.py --burst: refusals took 41 % of the server's threads and
the winners' checkouts waited behind them).

A section is remembered for SOLD_OUT_MEMORY_SECONDS after a hold found it sold out: a spot
freed meanwhile (a hold released or expired, a refund) is offered at most that late, which the
refusal's "0 free right now" already allows. Each process learns on its own; nothing is shared.
"""

from __future__ import annotations

import time

SOLD_OUT_MEMORY_SECONDS = 1.0
MAX_SECTIONS = 10_000

# (until, section name, whether a waiting list keeps its spots: services/waitlist.py)
_until: dict[tuple[int, int], tuple[float, str, bool]] = {}
_clock = time.monotonic  # replaced by tests to move time on


def remember(event_id: int, section_id: int, name: str, *, waitlist: bool = False) -> None:
    """The section of the event has no free spot right now (``waitlist``: none for ordinary
    buyers, its waiting list being in force)."""
    global _until
    now = _clock()
    if len(_until) >= MAX_SECTIONS:
        _until = {key: hit for key, hit in _until.items() if hit[0] > now}
    _until[(event_id, section_id)] = (now + SOLD_OUT_MEMORY_SECONDS, name, waitlist)


def name_of(event_id: int, section_id: int) -> str | None:
    """The section's name while it is remembered sold out, else None."""
    hit = _until.get((event_id, section_id))
    return hit[1] if hit is not None and hit[0] > _clock() else None


def waitlist_in_force(event_id: int, section_id: int) -> bool:
    """Whether the section is remembered as kept for its waiting list."""
    hit = _until.get((event_id, section_id))
    return hit is not None and hit[0] > _clock() and hit[2]


def forget() -> None:
    """Forget every section (tests reuse ids after emptying the tables)."""
    _until.clear()
