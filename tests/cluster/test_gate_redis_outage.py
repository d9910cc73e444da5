"""Issue 18, point 3: Redis killed (kill -9) while gates scan through the balancer, then started
again. Every answer stays correct, no ticket is admitted twice across the outage in either
direction, and the scan log holds every scan once. The cluster's Redis keeps an append-only
file (as production should), so it comes back with what it had written; what it had not (up
to a second) PostgreSQL knows, each admission being written there before it is answered."""

from __future__ import annotations

import datetime as dt
import signal
import threading
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import CheckIn
from app.models.base import utcnow
from app.services import checkin
from tests.support.builders import make_event, make_partner
from tests.support.cluster import Answers as Codes
from tests.support.cluster import Buyer
from tests.support.gate import device
from tests.support.shop import buy

pytestmark = pytest.mark.cluster

GATES = 4
TICKETS = 60


def scan_all(base: str, auth: dict[str, str], tickets: list[dict[str, Any]],
             seen: dict[str, tuple[int, str]], codes: Codes) -> None:  # fmt: skip
    """Each of GATES gates scans its share of ``tickets`` once; answers by nonce into ``seen``
    (a gate asks again, with the same nonce, after a failed request)."""

    def gate(share: list[dict[str, Any]], name: str) -> None:
        scanner = Buyer(base, codes)
        scanner.auth = auth
        for ticket in share:
            nonce = uuid.uuid4().hex
            body = {"code": ticket["code"], "gate": name, "direction": "in", "nonce": nonce}
            status, answer = scanner.again("scan", "POST", "/api/v1/checkin/scan", body)
            assert status == 200, (status, answer)
            seen[nonce] = (ticket["id"], answer["result"])

    threads = [
        threading.Thread(target=gate, args=(tickets[n::GATES], f"Gate {n + 1}"))
        for n in range(GATES)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)


def test_redis_killed_mid_scanning_admits_no_ticket_twice_and_logs_every_scan(
    whole_cluster, cluster_db
):
    cluster = whole_cluster
    with cluster_db.app_context():
        partner = make_partner(f"Gates {uuid.uuid4().hex[:6]}")
        now = utcnow()
        event = make_event(partner, "Gates", rows=("A", "C"), seats=20,
                           checkin_opens_at=now - dt.timedelta(hours=1),
                           checkin_closes_at=now + dt.timedelta(days=1))  # fmt: skip
        event.publish()
        db.session.commit()
        client = cluster_db.test_client()
        tickets: list[dict[str, Any]] = []
        while len(tickets) < TICKETS:
            tickets += buy(client, event, 5)["tickets"]
        auth = device(partner, event)
        assert checkin.arm_event(db.session, event.id)
        event_id = event.id
        db.session.remove()
    before, during, after = tickets[:20], tickets[20:40], tickets[40:]
    seen: dict[str, tuple[int, str]] = {}
    codes = Codes()

    scan_all(cluster.url, auth, before, seen, codes)  # admitted through Redis
    cluster.signal_part("redis", signal.SIGKILL)
    # While Redis is away: those admitted before are refused from the database, new ones let in.
    scan_all(cluster.url, auth, before + during, seen, codes)
    cluster.start_part("redis")
    # Back: everything scanned so far is refused, the rest let in, once.
    scan_all(cluster.url, auth, before + during + after, seen, codes)
    scan_all(cluster.url, auth, tickets, seen, codes)  # and all of it once more

    valid = Counter(ticket for ticket, result in seen.values() if result == "valid")
    with cluster_db.app_context():
        checkin.flush_scan_log(db.session)
        rows = db.session.scalars(select(CheckIn).where(CheckIn.event_id == event_id)).all()
        logged = Counter(row.nonce.split(":", 1)[1] for row in rows)
        db.session.remove()
    print(f"\nscans answered: {len(seen)}, results: {Counter(r for _, r in seen.values())}, "
          f"admitted twice: {sum(1 for n in valid.values() if n > 1)}, logged: {len(rows)}, "
          f"logged twice: {sum(1 for n in logged.values() if n > 1)}, "
          f"answers: {dict(codes.codes)}")  # fmt: skip
    assert valid == {ticket["id"]: 1 for ticket in tickets}  # each let in once, none twice
    assert {result for _, result in seen.values()} == {"valid", "already_used"}
    assert [nonce for nonce, n in logged.items() if n > 1] == []
    assert set(logged) == set(seen)  # every scan in the log, none made up
