"""Issue 18, point 3: Redis stopped in the middle of gate scanning, then brought back. Every
answer stays correct, no ticket is admitted twice across the outage in either direction, and
the scan log holds every scan once.

Each test starts its own redis-server (nothing on disk unless the test keeps a dump) and points
the app's REDIS_URL at it, then kills it (SIGKILL: it comes back empty, as a crash without
persistence does) or shuts it down with its data, scans meanwhile, and starts it again. Scans go
through the API, so both the fast path (gate devices) and the full path (gate staff) are
exercised; a second app on the same database and Redis stands for another web node.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.models import CheckIn, CheckinEntry
from app.services import checkin
from app.services.checkin import redis_store, scan_log
from app.services.checkin.redis_keys import entries_key
from app.services.checkin.rules import FirstAnswer
from tests.support.apps import IsolatedClient, another_app
from tests.support.builders import PartnerActor, api_token, make_partner, make_user
from tests.support.gate import open_event
from tests.support.pg_proxy import PgProxy, upstream_of
from tests.support.shop import buy

REDIS_SERVER = shutil.which("redis-server")

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs redis-server on PATH")


class RedisServer:
    """A redis-server of the test's own on a free port, which the test kills and starts again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.process is None
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        probe = redis.Redis.from_url(self.url, socket_timeout=1)
        while True:
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)
        probe.close()

    def kill(self) -> None:
        """SIGKILL: what Redis held and did not write down is gone (here, everything)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def shut_down_keeping_data(self) -> None:
        """Stopped with its data written to disk: it comes back with what it held."""
        redis.Redis.from_url(self.url).shutdown(save=True)
        assert self.process is not None
        self.process.wait(10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, decode_responses=True)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_redis(app: Flask, tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for this test alone, as the app's REDIS_URL for the test."""
    server = RedisServer(tmp_path)
    server.start()
    saved = app.config.get("REDIS_URL")
    app.config["REDIS_URL"] = server.url
    checkin.forget_fast_keys()
    yield server
    app.config["REDIS_URL"] = saved
    server.stop()
    checkin.forget_fast_keys()


#: Every answer a test's gates got: nonce -> (ticket id, result).
Answers = dict[str, tuple[int, str]]


class Gate:
    """Scans through one app's API with one credential; remembers every answer by nonce."""

    def __init__(self, client: FlaskClient, auth: dict[str, str], answers: Answers) -> None:
        self.client = client
        self.auth = auth
        self.answers = answers  # shared by the test's gates

    def scan(
        self, ticket: dict[str, Any], gate: str = "North", nonce: str | None = None
    ) -> dict[str, Any]:
        """Scan ``ticket`` (``nonce``: send a scan again, as a gate retries one whose answer it
        did not get)."""
        retry = nonce is not None
        nonce = nonce or uuid.uuid4().hex
        response = self.client.post(
            "/api/v1/checkin/scan",
            json={"code": ticket["code"], "gate": gate, "direction": "in", "nonce": nonce},
            headers=self.auth,
        )
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        answer = response.get_json()
        assert answer["ticket_id"] == ticket["id"], answer
        if retry:
            assert self.answers[nonce] == (ticket["id"], answer["result"]), answer
        self.answers[nonce] = (ticket["id"], answer["result"])
        answer["nonce"] = nonce
        return answer

    def result(self, ticket: dict[str, Any], gate: str = "North") -> str:
        return self.scan(ticket, gate)["result"]


def scanners(client: FlaskClient, partner: Any, event: Any) -> tuple[dict[str, str], ...]:
    """A gate device's headers (its scans take the fast path) and a gate user's (the full
    path)."""
    _, token = checkin.register_device(db.session, PartnerActor(partner), "North 1", [event.id])
    staff = make_user(f"gate{uuid.uuid4().hex[:6]}", "Gate", partner)
    checkin.assign_gate_user(db.session, PartnerActor(partner), staff.id, event.id)
    return {"Authorization": f"Bearer {token}"}, api_token(client, staff.username)


def tickets_of(client: FlaskClient, event: Any, count: int) -> list[dict[str, Any]]:
    tickets: list[dict[str, Any]] = []
    while len(tickets) < count:
        tickets += buy(client, event, min(5, count - len(tickets)))["tickets"]
    return tickets


def assert_admitted_once_each(answers: Answers, tickets: list[dict[str, Any]]) -> None:
    """Each ticket was answered "valid" exactly once; every other scan, "already used"."""
    valid = Counter(ticket for ticket, result in answers.values() if result == "valid")
    assert valid == {t["id"]: 1 for t in tickets}
    assert {result for _, result in answers.values()} <= {"valid", "already_used"}


def assert_logged_once(answers: Answers, event_id: int) -> None:
    """The scan log holds every scan answered once, with the answer it got, and nothing else."""
    checkin.flush_scan_log(db.session)
    db.session.rollback()
    rows = db.session.scalars(select(CheckIn).where(CheckIn.event_id == event_id)).all()
    nonces = Counter(row.nonce.split(":", 1)[1] for row in rows)
    assert [nonce for nonce, n in nonces.items() if n > 1] == []  # none twice
    assert set(nonces) == set(answers)  # none lost, none made up
    logged = {row.nonce.split(":", 1)[1]: (row.ticket_id, row.result) for row in rows}
    assert logged == answers
    assert db.session.scalar(select(func.count()).select_from(CheckIn)) == len(answers)


def test_a_redis_crash_loses_no_entry_and_no_scan(client, app, own_redis):
    """SIGKILL with scans not yet flushed: the database fallback knows every entry Redis took,
    Redis comes back empty and learns the entries the database took meanwhile, and the log
    holds every scan once."""
    partner = make_partner("Aurora")
    event = open_event(partner)
    tickets = tickets_of(client, event, 6)
    device_auth, staff_auth = scanners(client, partner, event)
    answers: Answers = {}
    device = Gate(client, device_auth, answers)
    staff = Gate(client, staff_auth, answers)

    # Redis up: the first scan arms the event, the next ones take the fast path.
    assert device.result(tickets[0], "North") == "valid"
    first_answer = device.scan(tickets[1], "North")  # fast path
    assert first_answer["result"] == "valid"
    assert staff.result(tickets[2], "East") == "valid"  # full path
    assert device.result(tickets[0], "South") == "already_used"
    assert own_redis.client().llen(checkin.LOG_KEY) > 0  # nothing flushed yet

    own_redis.kill()
    # Redis down: the database answers, and knows every entry Redis took, and every answer.
    device.scan(tickets[1], "North", nonce=first_answer["nonce"])  # a retry: the same answer
    for ticket in tickets[:3]:
        answer = device.scan(ticket, "West")
        assert answer["result"] == "already_used", answer
        assert answer["first_scan"]["gate"] in ("North", "East")
        assert staff.result(ticket, "West") == "already_used"
    assert device.result(tickets[3], "West") == "valid"
    assert staff.result(tickets[4], "West") == "valid"
    assert device.result(tickets[3], "South") == "already_used"

    own_redis.start()  # empty
    # Redis back, with nothing: every entry and answer so far is known, through either path.
    device.scan(tickets[1], "North", nonce=first_answer["nonce"])
    for ticket in tickets[:5]:
        assert device.result(ticket, "South") == "already_used"
        assert staff.result(ticket, "South") == "already_used"
    assert device.result(tickets[5], "South") == "valid"
    assert device.result(tickets[5], "North") == "already_used"

    assert_admitted_once_each(answers, tickets)
    assert_logged_once(answers, event.id)
    entries = {
        e.ticket_id: e.first_gate
        for e in db.session.scalars(select(CheckinEntry).where(CheckinEntry.event_id == event.id))
    }
    assert entries == {
        tickets[0]["id"]: "North",
        tickets[1]["id"]: "North",
        tickets[2]["id"]: "East",
        tickets[3]["id"]: "West",
        tickets[4]["id"]: "West",
        tickets[5]["id"]: "South",
    }


def test_redis_back_with_its_data_learns_the_entries_the_database_took_meanwhile(
    client, app, own_redis
):
    """Redis shut down with its data and started again: it still holds the event armed and the
    entries from before, not those the database took while it was away. Neither this node nor
    another one that never saw the outage admits those tickets again, and Redis holds them as
    soon as Redis answers again."""
    partner = make_partner("Aurora")
    event = open_event(partner)
    tickets = tickets_of(client, event, 5)
    device_auth, staff_auth = scanners(client, partner, event)
    answers: Answers = {}
    device = Gate(client, device_auth, answers)
    staff = Gate(client, staff_auth, answers)
    assert device.result(tickets[0], "North") == "valid"
    checkin.flush_scan_log(db.session)  # (the other direction is the crash test's)

    own_redis.shut_down_keeping_data()
    assert device.result(tickets[0], "West") == "already_used"
    for ticket in tickets[1:4]:
        assert device.result(ticket, "West") == "valid"
    own_redis.start()  # with the event armed and ticket 0's entry, not the others'
    cache = own_redis.client()
    assert cache.hexists(entries_key(event.id), tickets[0]["id"])
    assert not cache.hexists(entries_key(event.id), tickets[1]["id"])

    with another_app(app, REDIS_URL=own_redis.url) as node:
        node.test_client_class = IsolatedClient
        other = Gate(node.test_client(), device_auth, answers)
        # Another node that never saw Redis fail: its first scan is on the fast path.
        answer = other.scan(tickets[1], "South")
        assert answer["result"] == "already_used", answer
        assert answer["first_scan"]["gate"] == "West"
    # This node fell back meanwhile: before it answers from Redis again, Redis holds every
    # entry the database took.
    assert device.result(tickets[4], "South") == "valid"
    for ticket in tickets[1:4]:
        assert cache.hexists(entries_key(event.id), ticket["id"]), ticket
    assert device.result(tickets[2], "South") == "already_used"
    assert staff.result(tickets[3], "South") == "already_used"

    assert_admitted_once_each(answers, tickets)
    assert_logged_once(answers, event.id)


@pytest.fixture
def node(app: Flask, own_redis: RedisServer) -> Iterator[tuple[Flask, PgProxy]]:
    """Another web node on the test's Redis, whose PostgreSQL the test cuts (a TCP proxy)."""
    proxy = PgProxy(upstream_of(make_url(app.config["SQLALCHEMY_DATABASE_URI"])))
    proxy.restore()
    through_proxy = (
        make_url(app.config["SQLALCHEMY_DATABASE_URI"])
        .difference_update_query(["host", "port"])
        .set(host="127.0.0.1", port=proxy.port)
        .update_query_dict({"connect_timeout": "2"})
    )
    try:
        with another_app(
            app,
            SQLALCHEMY_DATABASE_URI=through_proxy.render_as_string(hide_password=False),
            SQLALCHEMY_ENGINE_OPTIONS=dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"]),
            REDIS_URL=own_redis.url,
        ) as other:
            other.test_client_class = IsolatedClient
            yield other, proxy
    finally:
        proxy.cut()


def cut_database(node: Flask, proxy: PgProxy) -> None:
    proxy.cut()
    with node.app_context():
        with pytest.raises(OperationalError):
            db.session.execute(text("SELECT 1"))
        db.session.remove()


def test_the_entries_taken_while_redis_was_away_reach_it_before_the_database_goes(
    client, own_redis, node
):
    """Redis back with its old data, then PostgreSQL gone: Redis answers alone, and already
    knows the entries the database took while Redis was away (the flush task told it)."""
    other, proxy = node
    partner = make_partner("Aurora")
    event = open_event(partner)
    tickets = tickets_of(client, event, 3)
    device_auth, _ = scanners(client, partner, event)
    answers: Answers = {}
    gate = Gate(other.test_client(), device_auth, answers)
    assert gate.result(tickets[0], "North") == "valid"  # arms the event
    checkin.flush_scan_log(db.session)
    own_redis.shut_down_keeping_data()
    assert gate.result(tickets[1], "West") == "valid"  # the database took it
    own_redis.start()
    checkin.flush_scan_log(db.session)  # the beat's task, every 5 seconds, on a worker
    cut_database(other, proxy)
    # Redis alone: no ticket admitted twice.
    assert gate.result(tickets[1], "South") == "already_used"
    assert gate.result(tickets[0], "South") == "already_used"
    assert gate.result(tickets[2], "South") == "valid"
    proxy.restore()
    with other.app_context():
        checkin.flush_scan_log(db.session)
        db.session.remove()
    assert_admitted_once_each(answers, tickets)
    assert_logged_once(answers, event.id)


def test_a_double_entry_left_to_redis_alone_is_reported_as_a_conflict(client, own_redis, node):
    """The case the guarantee leaves out: Redis back with its old data and PostgreSQL gone
    before any node or the flush task could tell Redis of the entries the database took while
    Redis was away. Redis alone admits such a ticket again: no copy within reach knows of it.
    When the database is back, the flush logs that admission as a conflict (the gate admitted
    a ticket already used), as an offline double entry is."""
    other, proxy = node
    partner = make_partner("Aurora")
    event = open_event(partner)
    armed, ticket = tickets_of(client, event, 2)
    device_auth, _ = scanners(client, partner, event)
    gate = Gate(other.test_client(), device_auth, {})
    assert gate.result(armed, "North") == "valid"  # arms the event
    own_redis.shut_down_keeping_data()
    assert gate.result(ticket, "West") == "valid"  # the database took it
    own_redis.start()
    cut_database(other, proxy)
    again = gate.scan(ticket, "South")
    assert again["result"] == "valid"  # the double entry
    proxy.restore()
    checkin.flush_scan_log(db.session)
    db.session.rollback()
    rows = db.session.scalars(
        select(CheckIn).where(CheckIn.ticket_id == ticket["id"]).order_by(CheckIn.id)
    ).all()
    assert [(r.gate, r.result, r.conflict, r.device_verdict) for r in rows] == [
        ("West", "valid", False, None),
        ("South", "already_used", True, "valid"),
    ]
    entry = db.session.get(CheckinEntry, ticket["id"])
    assert (entry.state, entry.first_gate) == ("in", "West")


def test_an_admission_still_being_written_loses_to_the_databases_later_one(
    client, own_redis, monkeypatch
):
    """The race of a gate on Redis and a gate still falling back to the database, across
    Redis's restart with its data: Redis admits a ticket; before that scan is written to the
    database, a gate that fell back admits the ticket from the database (which has no entry
    for it yet); then the flush writes Redis's queued scan. The database's entry is later than
    that scan, but no exit lies between the two admissions: the queued one is a second entry,
    and its write-through answers "already used". The ticket is admitted once, and nothing is
    reported as a double entry, because none happened."""
    partner = make_partner("Aurora")
    event = open_event(partner)
    armed, ticket = tickets_of(client, event, 2)
    device_auth, staff_auth = scanners(client, partner, event)
    answers: Answers = {}
    assert Gate(client, device_auth, answers).result(armed, "North") == "valid"  # arms it
    in_flight: list[tuple[Any, ...]] = []

    def paused(*args: Any) -> FirstAnswer:
        in_flight.append(args)  # the scan is queued in Redis and not written yet
        return FirstAnswer(args[4], args[3], mine=True)

    with monkeypatch.context() as patch:
        patch.setattr(redis_store, "write_through", paused)
        Gate(client, staff_auth, {}).scan(ticket, "East")  # the answer is not out yet
    own_redis.shut_down_keeping_data()
    assert Gate(client, device_auth, answers).result(ticket, "West") == "valid"  # database
    own_redis.start()
    checkin.flush_scan_log(db.session)
    session, cache, record, answer, fingerprint = in_flight[0]
    first = scan_log.write_through(db.session, cache, record, answer, fingerprint)
    answers[record["nonce"].split(":", 1)[1]] = (ticket["id"], first.answer["result"])

    assert first.answer["result"] == "already_used"
    assert first.answer["first_scan"]["gate"] == "West"
    assert_admitted_once_each(answers, [armed, ticket])
    assert_logged_once(answers, event.id)
    rows = db.session.scalars(
        select(CheckIn).where(CheckIn.ticket_id == ticket["id"]).order_by(CheckIn.scanned_at)
    ).all()
    assert [(r.gate, r.result, r.conflict, r.device_verdict) for r in rows] == [
        ("East", "already_used", False, None),
        ("West", "valid", False, None),
    ]
    assert "West" in own_redis.client().hget(entries_key(event.id), ticket["id"])


@pytest.mark.parametrize("batch", [1000, 1])
def test_scans_queued_while_the_database_was_away_are_history_not_double_entries(
    client, own_redis, node, monkeypatch, batch
):
    """A ticket in, out and in again (re-entry) while the database was away, the last scan
    written through once it is back, before the flush: the queued in and out are older than
    the database's entry, and an exit lies between the two admissions, so nothing is a double
    entry, even when the queue is flushed in batches that part the in from its out."""
    other, proxy = node
    partner = make_partner("Aurora")
    event = open_event(partner, allow_reentry=True)
    armed, ticket = tickets_of(client, event, 2)
    device_auth, _ = scanners(client, partner, event)
    gate = Gate(other.test_client(), device_auth, {})
    assert gate.result(armed, "North") == "valid"  # arms the event
    cut_database(other, proxy)
    monkeypatch.setattr(scan_log, "DATABASE_RETRY_SECONDS", 0.0)
    scans = [("in", "valid"), ("out", "valid")]
    for direction, expected in scans:
        response = gate.client.post(
            "/api/v1/checkin/scan",
            json={
                "code": ticket["code"],
                "gate": "East",
                "direction": direction,
                "nonce": uuid.uuid4().hex,
            },
            headers=device_auth,
        )
        assert response.get_json()["result"] == expected
    proxy.restore()
    assert gate.result(ticket, "West") == "valid"  # written through: the database's entry
    assert checkin.flush_scan_log(db.session, batch=batch) >= 3
    db.session.rollback()
    rows = db.session.scalars(
        select(CheckIn).where(CheckIn.ticket_id == ticket["id"]).order_by(CheckIn.scanned_at)
    ).all()
    assert [(r.gate, r.direction, r.result, r.conflict) for r in rows] == [
        ("East", "in", "valid", False),
        ("East", "out", "valid", False),
        ("West", "in", "valid", False),
    ]
    entry = db.session.get(CheckinEntry, ticket["id"])
    assert (entry.state, entry.first_gate) == ("in", "West")


@pytest.mark.concurrency
@pytest.mark.parametrize("outage", ["killed", "shut down with its data"])
def test_gates_scanning_through_a_redis_outage_admit_each_ticket_once(
    client, app, own_redis, outage
):
    """Four gates scan every ticket three times each, in random order, while Redis is killed
    (losing everything, its queue of scans too) or shut down keeping its data (without the
    entries the database takes meanwhile), then started again: each ticket is admitted once,
    every other scan of it answers "already used", and the log holds every scan once."""
    partner = make_partner("Aurora")
    event = open_event(partner)
    tickets = tickets_of(client, event, 30)
    device_auth, staff_auth = scanners(client, partner, event)
    # Armed, with the credentials cached, before the gates start.
    assert checkin.arm_event(db.session, event.id)
    answers: Answers = {}
    failures: list[str] = []
    jobs = [ticket for ticket in tickets for _ in range(3)]
    random.Random(18).shuffle(jobs)
    lock = threading.Lock()
    done = 0

    def gate(n: int) -> None:
        nonlocal done
        app.test_client_class = IsolatedClient
        http = app.test_client()
        auth = staff_auth if n == 3 else device_auth  # one gate on the full path
        while True:
            with lock:
                if not jobs:
                    return
                ticket = jobs.pop()
            nonce = f"g{n}-{uuid.uuid4().hex}"
            response = http.post(
                "/api/v1/checkin/scan",
                json={"code": ticket["code"], "gate": f"Gate {n}", "nonce": nonce},
                headers=auth,
            )
            with lock:
                done += 1
                if response.status_code != 200:
                    failures.append(response.get_data(as_text=True)[:300])
                    continue
                answers[nonce] = (ticket["id"], response.get_json()["result"])

    threads = [threading.Thread(target=gate, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    while done < 25:
        time.sleep(0.005)
    if outage == "killed":
        own_redis.kill()
    else:
        own_redis.shut_down_keeping_data()
    while done < 55:
        time.sleep(0.005)
    own_redis.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert len(answers) == 90
    assert_admitted_once_each(answers, tickets)
    assert_logged_once(answers, event.id)
    assert (
        db.session.scalar(
            select(func.count()).select_from(CheckinEntry).where(CheckinEntry.event_id == event.id)
        )
        == 30
    )
