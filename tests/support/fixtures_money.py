"""Plugin: the simulated acquirer's fees, and a broker queue of the test's own for a real worker."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis
from flask import Flask


@pytest.fixture
def acquirer_fees(app: Flask) -> Iterator[None]:
    """The acquirer keeps 2.5 % (rounded half up to the cent) + BRL 0.30 of each charge."""
    saved = {
        key: app.config[key] for key in ("SIM_ACQUIRER_FEE_PERCENT", "SIM_ACQUIRER_FEE_FIXED_CENTS")
    }
    app.config.update(SIM_ACQUIRER_FEE_PERCENT=Decimal("2.5"), SIM_ACQUIRER_FEE_FIXED_CENTS=30)
    yield
    app.config.update(saved)


@pytest.fixture
def broker() -> Iterator[tuple[redis.Redis, str]]:
    """A Redis client on the test's broker database, and a queue of the test's own, removed
    afterwards with anything of it the broker still holds."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    queue = f"money-test-{uuid.uuid4().hex[:10]}"
    yield client, queue
    for pattern in (f"{queue}*", f"_kombu.binding*.{queue}"):  # its lists and bindings
        for key in client.scan_iter(match=pattern):
            client.delete(key)
    for tag, raw in client.hgetall("unacked").items():
        if queue in json.loads(raw)[1:]:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
    client.close()
