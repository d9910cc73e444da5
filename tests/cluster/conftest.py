"""The cluster the fault tests kill parts of: ops/cluster.py's topology (HAProxy, two web nodes,
PgBouncer, its own PostgreSQL, Redis, two Celery workers, one beat) on free ports under a
temporary folder, started once for the run (about 20 s) and stopped at its end. Needs Debian's
haproxy, pgbouncer and redis-server: without them the tests skip, and with REQUIRE_CLUSTER=1
(CI) they fail instead."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from app.failpoints import DIR_ENV as FAILPOINTS_DIR
from app.failpoints import ENV as FAILPOINTS_ENV
from ops.cluster import Cluster, ClusterError, Ports, check_programs
from tests.support.cluster import cluster_app

pytestmark = pytest.mark.cluster

# Settings of every node and worker in the tests' cluster: a dead worker's task comes back after
# a minute (the least Celery's setting allows here), buyers are many, passwords cheap. The
# settlement and payout runs stop a while after their first day or payout, once, when a test
# arms their failpoints (app/failpoints.py: it creates the folder FAILPOINTS_DIR names).
CLUSTER_ENV = {
    "RATELIMIT_ENABLED": "false",
    "CELERY_VISIBILITY_TIMEOUT": "60",
    "MAX_SPOTS_PER_EVENT": "1000",
    "LOG_LEVEL": "WARNING",
    FAILPOINTS_ENV: "settlement.after_day=sleep:45,payouts.after_payout=sleep:45",
}


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    try:
        check_programs(with_prometheus=False)
    except ClusterError as exc:
        if os.environ.get("REQUIRE_CLUSTER") == "1":
            pytest.fail(f"REQUIRE_CLUSTER=1: {exc}")
        pytest.skip(str(exc))
    # Not under pytest's temporary folder, which it keeps private to root: PostgreSQL and
    # PgBouncer run as their own user and read their files here.
    base = Path(tempfile.mkdtemp(prefix="bilheteria-cluster-"))
    base.chmod(0o755)
    env = {**CLUSTER_ENV, FAILPOINTS_DIR: str(base / "failpoints")}
    running = Cluster(base, ports=Ports.free(nodes=2, workers=2), env=env, prometheus=False)
    try:
        running.start()
    except ClusterError:
        running.stop()
        raise
    yield running
    running.stop()
    # The logs stay (a few hundred kB) for a failure to be read; the data goes.
    for data in ("postgres", "redis", "metrics"):
        shutil.rmtree(base / data, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster_db(cluster: Cluster) -> Flask:
    """An app in the test process on the cluster's PostgreSQL and Redis."""
    return cluster_app(cluster.direct_database_url, cluster.redis_url)


@pytest.fixture
def whole_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, with every part running again after the test (a test kills some)."""
    yield cluster
    for name in cluster.order():
        if not cluster.is_running(name):
            cluster.start_part(name)
    cluster.wait_ready()
