"""Issue 18, point 3: restart PostgreSQL in the middle of an on-sale. While it is down requests
answer 503 (``busy``/``unavailable`` from a node, or the balancer's own 503 once every node
says it is not ready), never 500, and they succeed after; the reconcile task finishes what was
left half-done, and nothing is sold or charged twice."""

from __future__ import annotations

import time

import pytest

from tests.support.cluster import (
    NOTHING_LOST,
    Sale,
    add_customers,
    add_event,
    expire_abandoned_holds,
    losses,
    reconcile,
    sold,
)

pytestmark = pytest.mark.cluster

BUYERS = 16
PLACES = 200
PER_ORDER = 2
DOWN_SECONDS = 4


def test_a_postgresql_restart_mid_sale_answers_503_never_500_and_loses_nothing(
    whole_cluster, cluster_db
):
    cluster = whole_cluster
    event = add_event(cluster_db, "Database restarts", places=PLACES)
    emails = add_customers(cluster_db, BUYERS, "restart")
    sale = Sale(cluster.url, cluster_db, event, emails, PER_ORDER)
    answers, outcomes = sale.answers, sale.outcomes
    sale.wait_until_sold(PLACES // 4)
    cluster.stop_part("postgres")  # a fast shutdown: open transactions are rolled back
    before = len(outcomes)
    time.sleep(DOWN_SECONDS)
    during = {code: n for (_, code), n in answers.codes.items() if code >= 500}
    cluster.start_part("postgres")
    sale.finish(timeout=240)
    finished = reconcile(cluster_db)

    after = sold(cluster_db, event["event_id"])
    counted = losses(cluster_db, event["event_id"])
    print(f"\norders before the stop: {before}, 5xx while down: {during}, sold: {after}, "
          f"reconciled: {finished}, answers: {dict(answers.codes)}, losses: {counted}")  # fmt: skip
    assert during, "no request met the database down: the fault was not seen"
    assert answers.count(500) == 0, answers.bodies
    # Holds whose answer was lost come back when they expire.
    assert after["tickets"] + expire_abandoned_holds(cluster_db, event["event_id"]) == PLACES
    assert counted == NOTHING_LOST
    assert set(outcomes) <= {200, 201, 409}, answers.bodies
    assert outcomes.count(409) == BUYERS
