"""Check-in benchmark: concurrent gate scanners against one armed event of N issued tickets.

Prepares its own PostgreSQL database and Redis (one partner, one published event whose check-in
window is open, N paid tickets with signed codes, one gate device, the event armed), starts
the production server (app/server.py; or targets --url), then 32 scanner threads send (1) the first scan of every ticket,
(2) repeated scans of scanned tickets, (3) forged codes (a valid code with one signature byte
flipped). Each phase prints scans/s, p50/p95/p99, non-200 answers and wrong results (expected:
valid / already_used / invalid). A baseline in this process does only the floor of a scan, an
Ed25519 verify and a Redis ``SET NX``, with the same threads. The scan log is flushed at the
end and counted. Under each phase, the CPU time per scan of the server's workers, this client
and redis-server (from /proc), and the scans/s the cores would allow at that cost (the machine
may be shared). The last line is one JSON object; the exit status is 1 if any answer was wrong
or missing, or the log does not hold every scan. Not a test: run it by hand.

    .venv/bin/python bench/checkin.py                        # 20,000 tickets, server 2 x 4
    .venv/bin/python bench/checkin.py --workers 3 --threads 4 --tickets 5000
    .venv/bin/python bench/checkin.py --multiprocess      # metrics as `make serve` keeps them
    .venv/bin/python bench/checkin.py --profile var/checkin.raw   # py-spy each worker in phase 1
    PYTHONPATH=/tmp/proto .venv/bin/python bench/checkin.py --wsgi-app fast:app   # a prototype
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common import (
    Client,
    TierMeter,
    cpu_seconds,
    fresh_schema,
    machine_busy,
    percentile,
    start_cluster,
    start_server,
    worker_pids,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCAN_PATH = "/api/v1/checkin/scan"


def forge(code: str) -> str:
    """The same code with one byte of its signature flipped: well formed, signed by nobody."""
    raw = bytearray(base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)))
    raw[-17] ^= 0x5A
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def iso_now() -> str:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


# --------------------------------------------------------------------------- preparation


def prepare(
    database_url: str, redis_url: str, tickets: int, sections: int, per_order: int
) -> tuple[Any, dict[str, Any]]:
    """Fresh schema and Redis keys; one partner, one published event with an open check-in
    window, ``tickets`` paid tickets (codes signed with the event's key), a gate device and the
    event armed. Returns the Flask app (for the flush) and what the scanners need."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    from sqlalchemy import func, insert, select, text

    from app import create_app
    from app.extensions import db
    from app.models import Customer, Event, EventSection, EventSpot, Order, Partner, Ticket
    from app.models.base import utcnow
    from app.models.codes import TicketClaim, sign_ticket, verify_ticket
    from app.services.checkin.arming import arm_event
    from app.services.checkin.devices import register_device
    from app.services.checkin.redis_keys import redis_client
    from app.services.scoping import SYSTEM
    from app.views.roles import sync_permissions

    app = create_app({"LOG_LEVEL": "WARNING"})
    started = time.perf_counter()
    with app.app_context():
        fresh_schema(db)
        sync_permissions(app.appbuilder)
        cache = redis_client()
        stale = list(cache.scan_iter("ck:*", count=10_000))
        for chunk in range(0, len(stale), 10_000):
            cache.delete(*stale[chunk : chunk + 10_000])

        now = utcnow().replace(microsecond=0)
        partner = Partner(name="Bench", status="approved", fee_percent=10, fee_fixed_cents=100)
        event = Event(partner=partner, name="Bench Gate Night", venue="Arena", city="Sao Paulo",
                      starts_at=now + dt.timedelta(hours=2), currency="BRL",
                      checkin_opens_at=now - dt.timedelta(hours=1),
                      checkin_closes_at=now + dt.timedelta(days=1))  # fmt: skip
        for n in range(sections):
            event.sections.append(
                EventSection(name=f"Sector {n + 1}", kind="seated", price_cents=10000)
            )
        db.session.add(event)
        db.session.commit()

        # Every spot sold: one per ticket, sections filled in turn, 50 seats a row.
        spot_rows = []
        for index in range(tickets):
            section = event.sections[index % sections]
            place = index // sections
            row, seat = divmod(place, 50)
            spot_rows.append({
                "section_id": section.id, "event_id": event.id,
                "label": f"R{row + 1}-{seat + 1}", "row_label": f"R{row + 1}",
                "seat_number": seat + 1, "position": place + 1, "status": "sold",
            })  # fmt: skip
        spots = db.session.execute(
            insert(EventSpot).returning(EventSpot.id, EventSpot.section_id, EventSpot.label,
                                        sort_by_parameter_order=True),
            spot_rows,
        ).all()  # fmt: skip
        event.publish()
        db.session.commit()

        orders_needed = -(-tickets // per_order)
        customer_ids = db.session.scalars(
            insert(Customer).returning(Customer.id, sort_by_parameter_order=True),
            [{"name": f"Holder {n}", "email": f"holder{n}@bench.example", "created_at": now}
             for n in range(orders_needed)],
        ).all()  # fmt: skip
        order_ids = db.session.scalars(
            insert(Order).returning(Order.id, sort_by_parameter_order=True),
            [{"customer_id": customer_id, "event_id": event.id, "status": "paid",
              "total_cents": 10000 * per_order, "currency": "BRL", "created_at": now,
              "paid_at": now} for customer_id in customer_ids],
        ).all()  # fmt: skip
        # Ticket ids first: the signed claim carries the ticket's id.
        next_ids = (
            "SELECT nextval(pg_get_serial_sequence('ticket', 'id')) FROM generate_series(1, :n)"
        )
        ticket_ids = db.session.scalars(text(next_ids), {"n": tickets}).all()
        section_names = {s.id: s.name for s in event.sections}
        ticket_rows = []
        scans: list[tuple[int, str]] = []
        for index, (ticket_id, spot) in enumerate(zip(ticket_ids, spots, strict=True)):
            label = f"{section_names[spot.section_id]} {spot.label}"  # Ticket.seat_label
            code = sign_ticket(event.signing_key, TicketClaim(event.id, ticket_id, label))
            ticket_rows.append({
                "id": ticket_id, "order_id": order_ids[index // per_order],
                "event_id": event.id, "section_id": spot.section_id, "spot_id": spot.id,
                "price_cents": 10000, "currency": "BRL", "status": "valid",
                "holder_name": f"Holder {index // per_order}", "code": code, "issued_at": now,
            })  # fmt: skip
            scans.append((ticket_id, code))
        db.session.execute(insert(Ticket), ticket_rows)
        db.session.commit()
        for ticket_id, code in random.sample(scans, min(200, len(scans))):
            assert verify_ticket(event.public_key, code).ticket_id == ticket_id
        issued = db.session.scalar(
            select(func.count()).where(Ticket.event_id == event.id, Ticket.status == "valid")
        )
        assert issued == tickets, issued
        prepared_s = time.perf_counter() - started

        _, token = register_device(db.session, SYSTEM, "Bench gate", [event.id])
        armed_started = time.perf_counter()
        assert arm_event(db.session, event.id)
        arm_s = time.perf_counter() - armed_started
        return app, {
            "event_id": event.id,
            "public_key": event.public_key,
            "token": token,
            "scans": scans,
            "prepare_s": prepared_s,
            "arm_s": arm_s,
        }


class CpuMeter:
    """CPU spent by the server's workers, this client, redis-server and the whole machine
    while a phase runs: where a scan's CPU goes when the cores are the limit."""

    def __init__(self, workers: list[int], redis_pid: int | None) -> None:
        self.workers = workers
        self.redis_pid = redis_pid

    def snapshot(self) -> dict[str, Any]:
        return {
            "workers": [cpu_seconds(pid) for pid in self.workers],
            "client": sum(os.times()[:2]),
            "redis": cpu_seconds(self.redis_pid) if self.redis_pid else 0.0,
            "machine": machine_busy(),
        }

    def usage(self, before: dict[str, Any], after: dict[str, Any], scans: int) -> dict[str, Any]:
        per_worker = [b - a for a, b in zip(before["workers"], after["workers"], strict=True)]
        busy = after["machine"][0] - before["machine"][0]
        total = after["machine"][1] - before["machine"][1]
        scans = max(1, scans)
        server = sum(per_worker) / scans
        client = (after["client"] - before["client"]) / scans
        redis_cpu = (after["redis"] - before["redis"]) / scans
        # Other processes share these cores: what the cores would do for this CPU per scan.
        spent = server + client + redis_cpu
        return {
            "worker_cpu_s": [round(v, 2) for v in per_worker],
            "server_ms_per_scan": round(1000 * server, 3),
            "client_ms_per_scan": round(1000 * client, 3),
            "redis_ms_per_scan": round(1000 * redis_cpu, 3),
            "machine_busy_pct": round(100 * busy / total, 1) if total else 0.0,
            "cpu_bound_scans_per_s": round(os.cpu_count() / spent) if spent else None,
        }


# --------------------------------------------------------------------------- measuring


@dataclass
class Phase:
    name: str
    expected: str
    latencies: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    errors: int = 0  # non-200 answers
    wrong: int = 0  # 200 with another result than expected
    samples: list[str] = field(default_factory=list)
    cpu: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def per_s(self) -> float:
        return self.count / self.elapsed_s if self.elapsed_s else 0.0

    def line(self) -> str:
        values = self.latencies
        return (
            f"{self.name:9s} n={self.count:6d} {self.per_s:7.0f} scans/s  "
            f"p50={percentile(values, 50):6.2f} ms p95={percentile(values, 95):6.2f} ms "
            f"p99={percentile(values, 99):6.2f} ms mean={statistics.fmean(values or [0]):6.2f} ms"
            f"  non-200={self.errors} wrong={self.wrong}"
        )

    def figures(self) -> dict[str, Any]:
        return {
            "n": self.count,
            "scans_per_s": round(self.per_s, 1),
            "p50_ms": round(percentile(self.latencies, 50), 2),
            "p95_ms": round(percentile(self.latencies, 95), 2),
            "p99_ms": round(percentile(self.latencies, 99), 2),
            "errors": self.errors,
            "wrong_results": self.wrong,
            **self.cpu,
        }

    def cpu_line(self) -> str:
        if not self.cpu:
            return ""
        return (
            f"{'':9s} cpu/scan: server {self.cpu['server_ms_per_scan']:.3f} ms (workers "
            f"{self.cpu['worker_cpu_s']} s), client {self.cpu['client_ms_per_scan']:.3f} ms, "
            f"redis {self.cpu['redis_ms_per_scan']:.3f} ms; machine busy "
            f"{self.cpu['machine_busy_pct']:.0f} %; all cores at this cost: "
            f"{self.cpu['cpu_bound_scans_per_s']} scans/s"
        )


def in_threads(
    phase: Phase,
    jobs: list[Any],
    concurrency: int,
    setup: Callable[[], Any],
    one: Callable,
    meter: CpuMeter | None = None,
) -> Phase:
    """Run ``one(state, job) -> (ms, status, wrong_detail)`` over ``jobs`` with ``concurrency``
    threads (each with its own ``setup()`` state, made one after the other beforehand), all
    starting at once."""
    counter = itertools.count()  # next() is atomic under the GIL
    lock = threading.Lock()
    gate = threading.Barrier(concurrency + 1)
    states = [setup() for _ in range(concurrency)]

    def worker(state: Any) -> None:
        latencies: list[float] = []
        errors = wrong = 0
        samples: list[str] = []
        gate.wait()
        while (index := next(counter)) < len(jobs):
            ms, ok_status, detail = one(state, jobs[index])
            latencies.append(ms)
            if not ok_status:
                errors += 1
            elif detail is not None:
                wrong += 1
            if detail is not None and len(samples) < 3:
                samples.append(detail)
        with lock:
            phase.latencies.extend(latencies)
            phase.errors += errors
            phase.wrong += wrong
            phase.samples.extend(samples[: 3 - len(phase.samples)])

    threads = [threading.Thread(target=worker, args=(state,)) for state in states]
    for thread in threads:
        thread.start()
    before = meter.snapshot() if meter else None
    gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    phase.elapsed_s = time.perf_counter() - started
    if meter is not None:
        phase.cpu = meter.usage(before, meter.snapshot(), phase.count)
    return phase


def scan_phase(
    base: str,
    token: str,
    name: str,
    expected: str,
    jobs: list[tuple[int, str]],
    concurrency: int,
    meter: CpuMeter | None = None,
    reason: str | None = None,
) -> Phase:
    """Scan ``jobs`` (ticket id, code) through the API; each must answer ``expected`` (and
    ``reason``, when given)."""
    auth = {"Authorization": f"Bearer {token}"}

    def one(client: Client, job: tuple[int, str]) -> tuple[float, bool, str | None]:
        ticket_id, code = job
        body = {"code": code, "gate": "North 1", "direction": "in", "nonce": uuid.uuid4().hex,
                "scanned_at": iso_now()}  # fmt: skip
        status, answer, ms = client.call("POST", SCAN_PATH, body, auth)
        if status != 200:
            return ms, False, f"{status} {answer}"
        result = answer.get("result")
        if result != expected:
            return ms, True, f"ticket {ticket_id}: {answer}"
        if expected != "invalid" and answer.get("ticket_id") != ticket_id:
            return ms, True, f"ticket {ticket_id}: {answer}"
        if reason is not None and answer.get("reason") != reason:
            return ms, True, f"ticket {ticket_id}: {answer}"
        if expected == "already_used" and not answer.get("first_scan"):
            return ms, True, f"ticket {ticket_id}: {answer}"
        return ms, True, None

    def connected() -> Client:
        # Connect one at a time, as gates come online: 32 connections opened in one burst
        # tend to land on the same server worker and stay there (keep-alive).
        client = Client(base)
        client.conn.connect()
        time.sleep(0.005)
        return client

    return in_threads(Phase(name, expected), jobs, concurrency, connected, one, meter)


def baseline_phase(
    redis_url: str,
    public_key: str,
    jobs: list[tuple[int, str]],
    concurrency: int,
    meter: CpuMeter | None = None,
) -> Phase:
    """The floor of a scan: verify the code's signature, take the entry with ``SET NX``."""
    import redis

    from app.models.codes import InvalidCode, verify_ticket

    pool = redis.ConnectionPool.from_url(redis_url, max_connections=concurrency)
    client = redis.Redis(connection_pool=pool)
    run = uuid.uuid4().hex[:8]

    def one(_: None, job: tuple[int, str]) -> tuple[float, bool, str | None]:
        ticket_id, code = job
        started = time.perf_counter()
        try:
            claim = verify_ticket(public_key, code)
        except InvalidCode:
            return (time.perf_counter() - started) * 1000, True, f"ticket {ticket_id}: invalid"
        taken = client.set(f"ck:bench:{run}:{claim.ticket_id}", "in", nx=True)
        ms = (time.perf_counter() - started) * 1000
        return ms, True, None if taken else f"ticket {ticket_id}: taken twice"

    phase = in_threads(Phase("baseline", "valid"), jobs, concurrency, lambda: None, one, meter)
    keys = list(client.scan_iter(f"ck:bench:{run}:*", count=10_000))
    for chunk in range(0, len(keys), 10_000):
        client.delete(*keys[chunk : chunk + 10_000])
    pool.disconnect()
    return phase


def start_profile(pid: int, path: str, seconds: int) -> subprocess.Popen:
    """py-spy one server worker (raw collapsed stacks, GIL holder only) during phase 1."""
    py_spy = str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [py_spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "250", "--gil",
         "--format", "raw", "-o", path],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def redis_pid(redis_url: str) -> int | None:
    """redis-server's pid when it runs on this machine (for its CPU time)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    host = urlsplit(redis_url).hostname or ""
    return (
        pid if host in ("127.0.0.1", "localhost", "::1") and Path(f"/proc/{pid}").exists() else None
    )


def flush_log(app: Any, event_id: int) -> tuple[int, int, float]:
    """Flush the Redis scan log into the database: (CheckIn rows, entries, seconds)."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import CheckIn, CheckinEntry
    from app.services.checkin.scan_log import flush_scan_log

    with app.app_context():
        started = time.perf_counter()
        flush_scan_log(db.session)
        flush_s = time.perf_counter() - started
        logged = db.session.scalar(select(func.count()).where(CheckIn.event_id == event_id))
        entries = db.session.scalar(select(func.count()).where(CheckinEntry.event_id == event_id))
        return logged or 0, entries or 0, flush_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/bilheteria_bench_checkin"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, help="repeated scans (default: tickets / 2)")
    parser.add_argument("--forged", type=int, help="forged codes (default: tickets / 2)")
    parser.add_argument("--sections", type=int, default=4)
    parser.add_argument("--per-order", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32, help="scanner threads")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument(
        "--wsgi-app",
        default="app:create_app()",
        help="what the server serves (to compare a prototype: PYTHONPATH=dir --wsgi-app mod:app)",
    )
    parser.add_argument("--url", help="target a running server (on the same database and Redis)")
    parser.add_argument(
        "--cluster", type=int, metavar="NODES",
        help="start ops/cluster.py's topology with NODES web nodes of --workers x --threads and "
        "scan through the balancer; prints the CPU per first scan of each tier",
    )  # fmt: skip
    parser.add_argument(
        "--profile", metavar="PATH", help="py-spy every worker in phase 1 into PATH.<pid>"
    )
    parser.add_argument("--profile-seconds", type=int, default=8)
    parser.add_argument(
        "--multiprocess",
        action="store_true",
        help="metrics summed across workers through a directory, as `make serve` runs",
    )
    args = parser.parse_args()
    repeats = args.tickets // 2 if args.repeats is None else args.repeats
    forged_count = args.tickets // 2 if args.forged is None else args.forged

    cluster = None
    if args.cluster:
        cluster = start_cluster(args.cluster, args.workers, args.threads, {})
        args.database_url, args.redis_url = cluster.direct_database_url, cluster.redis_url
    else:
        admin_url = args.database_url.rsplit("/", 1)[0] + "/postgres"
        db_name = args.database_url.rsplit("/", 1)[1]
        subprocess.run(["psql", admin_url, "-qc", f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"],
                       check=True)  # fmt: skip
        subprocess.run(["psql", admin_url, "-qc", f"CREATE DATABASE {db_name}"], check=True)
    app, setup = prepare(
        args.database_url, args.redis_url, args.tickets, args.sections, args.per_order
    )
    scans: list[tuple[int, str]] = setup["scans"]
    print(f"prepared {len(scans)} tickets in {setup['prepare_s']:.1f} s, "
          f"armed in {setup['arm_s']:.2f} s")  # fmt: skip

    redis_process = redis_pid(args.redis_url)
    baseline = baseline_phase(args.redis_url, setup["public_key"], scans, args.concurrency,
                              CpuMeter([], redis_process))  # fmt: skip

    first_jobs = random.sample(scans, len(scans))
    repeat_jobs = [random.choice(scans) for _ in range(repeats)]
    forged_jobs = [(ticket, forge(code)) for ticket, code in random.choices(scans, k=forged_count)]
    server = None
    base = cluster.url if cluster is not None else args.url
    if base is None:
        server = start_server(
            {"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url},
            args.port,
            args.workers,
            args.threads,
            args.wsgi_app,
            metrics_dir=tempfile.mkdtemp(prefix="bench-metrics-") if args.multiprocess else None,
        )
        base = f"http://127.0.0.1:{args.port}"
    workers = worker_pids(server.pid) if server is not None else []
    meter = CpuMeter(workers, redis_process)
    token = setup["token"]
    profilers: list[subprocess.Popen] = []
    try:
        # Warm every worker and thread (connections, imports): malformed codes, not measured
        # (but logged like any scan).
        warm_jobs = [(0, "warm-up")] * (args.concurrency * 4)
        warm = scan_phase(base, token, "warm-up", "invalid", warm_jobs, args.concurrency)
        if args.profile:
            profilers = [
                start_profile(pid, f"{args.profile}.{pid}", args.profile_seconds) for pid in workers
            ]
        tiers = TierMeter(cluster) if cluster is not None else None
        tiers_before = tiers.snapshot() if tiers is not None else {}
        first = scan_phase(base, token, "first", "valid", first_jobs, args.concurrency, meter)
        tiers_after = tiers.snapshot() if tiers is not None else {}
        repeat = scan_phase(base, token, "repeat", "already_used", repeat_jobs,
                            args.concurrency, meter)  # fmt: skip
        forged = scan_phase(base, token, "forged", "invalid", forged_jobs,
                            args.concurrency, meter, reason="bad_signature")  # fmt: skip
    finally:
        for profiler in profilers:
            profiler.wait(args.profile_seconds + 30)
        if server is not None:
            server.terminate()
            server.wait(30)
    phases = (first, repeat, forged)
    sent = sum(p.count - p.errors for p in (warm, *phases))
    logged, entries, flush_s = flush_log(app, setup["event_id"])
    cpu_per_scan = (
        TierMeter.per_unit(tiers_before, tiers_after, first.count) if tiers_before else {}
    )
    if cluster is not None:
        print(f"CPU per first scan (ms), by tier: {cpu_per_scan}")
        cluster.stop()

    where = f"server {args.workers} processes x {args.threads} threads" if server else base
    if cluster is not None:
        where = f"cluster of {args.cluster} node(s) of {args.workers} x {args.threads}, {base}"
    print(f"{len(scans)} tickets, {args.concurrency} scanners, {where}")
    for phase in (*phases, baseline):
        print(phase.line())
        if phase.cpu:
            print(phase.cpu_line())
        for sample in phase.samples:
            print(f"    e.g. {sample}")
    ratio = first.per_s / baseline.per_s if baseline.per_s else 0.0
    print(f"first scans at {ratio:.2f} of the baseline's throughput")
    rate = logged / flush_s if flush_s else 0
    print(f"scan log: {logged} rows for {sent} scans answered (warm-up included), {entries} "
          f"entries; flushed in {flush_s:.2f} s ({rate:.0f} rows/s)")  # fmt: skip
    wrong = sum(p.wrong for p in phases)
    errors = sum(p.errors for p in phases)
    print(json.dumps({
        "scans_per_s": round(first.per_s, 1),
        "p99_ms": round(max(percentile(p.latencies, 99) for p in phases), 2),
        "baseline_scans_per_s": round(baseline.per_s, 1),
        "baseline_ratio": round(ratio, 3),
        "first": first.figures(),
        "repeat": repeat.figures(),
        "forged": forged.figures(),
        "baseline": baseline.figures(),
        "wrong_results": wrong,
        "errors": errors,
        "logged": logged,
        "sent": sent,
        "entries": entries,
        "flush_s": round(flush_s, 2),
        "tickets": len(scans),
        "concurrency": args.concurrency,
        "workers": args.workers if server else None,
        "threads": args.threads if server else None,
        "cluster_nodes": args.cluster,
        "cpu_ms_per_scan": cpu_per_scan or None,
    }))  # fmt: skip
    if wrong or errors or logged != sent or entries != len(scans):
        sys.exit(1)


if __name__ == "__main__":
    main()
