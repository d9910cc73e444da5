"""What the benchmarks share: a keep-alive JSON client, percentiles, a fresh database and schema,
the production server."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
# The embedded PostgreSQL the benchmarks start when given no server (apart from make run's).
EMBEDDED_DIR = ROOT / "var" / "bench-postgres"


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 when it is not on this machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def worker_pids(master: int) -> list[int]:
    """The child processes of ``master`` (a server's workers)."""
    pids: list[int] = []
    for children in Path(f"/proc/{master}/task").glob("*/children"):
        pids.extend(int(pid) for pid in children.read_text().split())
    return sorted(pids)


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


def postgres_cpu_seconds() -> float:
    """CPU used so far by every PostgreSQL process of this machine (the bench is alone on it)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"postgres" not in cmdline.read():
                    continue
        except OSError:
            continue
        total += cpu_seconds(int(pid))
    return total


class StackMeter:
    """CPU seconds spent while a phase runs by each part sharing the machine: the server (its
    master and workers), every PostgreSQL process, this process (the load generator), and
    the machine as a whole. Their sum over the cores is the least time the phase can take at
    these costs: when it is close to the phase's time, the cores are the limit."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.workers = worker_pids(server_pid)

    def snapshot(self) -> dict[str, float]:
        return {
            "server": sum(cpu_seconds(pid) for pid in [self.server_pid, *self.workers]),
            "postgres": postgres_cpu_seconds(),
            "load generator": sum(os.times()[:2]),
            "machine": machine_busy()[0],
            "wall": time.perf_counter(),
        }

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """CPU seconds of each part between two snapshots, the wall time, and ``floor_s``: the
        three parts' CPU spread over every core."""
        used = {part: round(after[part] - before[part], 2) for part in before}
        parts = used["server"] + used["postgres"] + used["load generator"]
        used["floor_s"] = round(parts / (os.cpu_count() or 1), 2)
        return used

    @staticmethod
    def line(used: dict[str, float]) -> str:
        return (
            f"CPU in {used['wall']:.2f} s: server {used['server']:.2f} s, PostgreSQL "
            f"{used['postgres']:.2f} s, load generator {used['load generator']:.2f} s, machine "
            f"{used['machine']:.2f} s; on {os.cpu_count()} cores these three take at least "
            f"{used['floor_s']:.2f} s"
        )


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def _json(data: bytes) -> dict:
    """An answer's JSON body; {} when it has none or is not JSON."""
    try:
        return json.loads(data) if data else {}
    except ValueError:
        return {}


class AsyncClient:
    """One keep-alive HTTP/1.1 connection on an event loop, JSON in and out: a crowd of them
    runs in one thread, where a thread each (Client) cost the load generator more CPU than the
    database, on the cores the server shares (bench/onsale.py)."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def call(
        self, method: str, path: str, body: dict | None = None, headers: dict | None = None
    ) -> tuple[int, dict, float]:
        """(status, parsed JSON body, milliseconds); 599 when the connection failed."""
        payload = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 "Content-Type: application/json", f"Content-Length: {len(payload)}",
                 *(f"{name}: {value}" for name, value in (headers or {}).items())]  # fmt: skip
        started = time.perf_counter()
        try:
            if self.writer is None or self.writer.is_closing():
                await self.connect()
            assert self.reader is not None and self.writer is not None
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
            head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            status = int(head[0].split()[1])
            fields = {
                k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])
            }
            if fields.get("transfer-encoding") == "chunked":
                data = b""
                while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                    data += (await self.reader.readexactly(size + 2))[:-2]
                await self.reader.readuntil(b"\r\n")
            else:
                data = await self.reader.readexactly(int(fields.get("content-length", 0)))
            if fields.get("connection", "").lower() == "close":  # as http.client: open anew
                self.close()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, IndexError):  # fmt: skip
            self.close()
            return 599, {}, (time.perf_counter() - started) * 1000
        elapsed = (time.perf_counter() - started) * 1000
        return status, _json(data), elapsed

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Client:
    """One keep-alive HTTP connection, JSON in and out."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def call(
        self, method: str, path: str, body: dict | None = None, headers: dict | None = None
    ) -> tuple[int, dict, float]:
        """(status, parsed JSON body, milliseconds); 599 when the connection failed."""
        payload = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        started = time.perf_counter()
        try:
            self.conn.request(method, path, payload, all_headers)
            response = self.conn.getresponse()
            data = response.read()
        except (ConnectionError, http.client.HTTPException, TimeoutError):
            self.conn.close()
            return 599, {}, (time.perf_counter() - started) * 1000
        elapsed = (time.perf_counter() - started) * 1000
        return response.status, _json(data), elapsed


def fresh_database(server_url: str | None, name: str) -> str:
    """The URL of database ``name``, dropped and created empty, on the PostgreSQL server of
    ``server_url`` (whatever database it names is left alone), or with None on an embedded server
    in var/bench-postgres (app/local_postgres.py), which stops when this process exits."""
    from sqlalchemy import create_engine, make_url, text

    if server_url is None:
        sys.path.insert(0, str(ROOT))
        from app import local_postgres

        server_url = local_postgres.start(EMBEDDED_DIR, "postgres")
    url = make_url(server_url).set(drivername="postgresql+psycopg")
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:  # a name of ours, never user input
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def fresh_schema(db: Any) -> None:
    """Drop everything in the bench database and migrate it from scratch (in an app context)."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    with db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade()


def start_server(
    env: dict[str, str],
    port: int,
    workers: int,
    threads: int,
    wsgi_app: str = "app:create_app()",
    metrics_dir: str | None = None,
) -> subprocess.Popen:
    """The production server (app/server.py: Granian) in production mode with rate limits off,
    serving ``wsgi_app`` (``module:factory()`` or ``module:app``) with ``env`` on top of ours;
    returns once /healthz answers. ``metrics_dir``: Prometheus metrics summed across the worker
    processes through that directory, as `make serve` runs (else each process keeps its own)."""
    sys.path.insert(0, str(ROOT))
    from app.server import command

    env = {
        **os.environ,
        "APP_ENV": "production",
        "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "RATELIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        "GRANIAN_LOG_LEVEL": "warning",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "WEB_THREADS": str(threads),
        "DB_POOL_SIZE": str(max(2, threads)),
        **env,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if metrics_dir is not None:
        os.makedirs(metrics_dir, exist_ok=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    argv = command(wsgi_app.removesuffix("()"), factory=wsgi_app.endswith("()"), env=env)
    process = subprocess.Popen(argv, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            status, _, _ = Client(base).call("GET", "/healthz")
            if status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise SystemExit("the server did not start")


# The cluster's parts by tier, for the CPU each costs per ticket or scan.
TIERS = {
    "web": lambda name: name.startswith("web"),
    "haproxy": lambda name: name == "haproxy",
    "pgbouncer": lambda name: name == "pgbouncer",
    "postgres": lambda name: name == "postgres",
    "redis": lambda name: name == "redis",
    "celery": lambda name: name.startswith("worker") or name == "beat",
}


def start_cluster(nodes: int, workers: int, threads: int, env: dict[str, str]) -> Any:
    """ops/cluster.py's topology with ``nodes`` web nodes of ``workers`` processes x
    ``threads`` threads, on free ports under var/bench-cluster (wiped first), Prometheus left
    out; returns the running Cluster (stop it with ``.stop()``)."""
    import shutil

    sys.path.insert(0, str(ROOT))
    from ops.cluster import Cluster, Ports

    base = ROOT / "var" / "bench-cluster"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    base.chmod(0o755)
    cluster = Cluster(
        base, ports=Ports.free(nodes=nodes, workers=2), web_concurrency=workers,
        web_threads=threads, prometheus=False,
        env={"RATELIMIT_ENABLED": "false", "LOG_LEVEL": "WARNING", **env},
    )  # fmt: skip
    cluster.start()
    return cluster


class TierMeter:
    """CPU seconds of each tier of a cluster (and of this process, the load generator) between
    two snapshots."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    def snapshot(self) -> dict[str, float]:
        used = self.cluster.cpu_seconds()
        tiers = {tier: sum(s for name, s in used.items() if part(name))
                 for tier, part in TIERS.items()}  # fmt: skip
        tiers["load generator"] = sum(os.times()[:2])
        return tiers

    @staticmethod
    def per_unit(before: dict[str, float], after: dict[str, float], units: int) -> dict[str, float]:
        """Milliseconds of CPU per unit (ticket, scan) of each tier."""
        return {tier: round(1000 * (after[tier] - before[tier]) / max(1, units), 3)
                for tier in before}  # fmt: skip
