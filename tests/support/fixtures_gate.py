"""Plugin: the two stores gate check-in validates from, and a second app whose database a test
can cut (through ``pg_proxy``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy.engine import make_url

from tests.support.apps import another_app
from tests.support.database import forget_checkin_state
from tests.support.pg_proxy import PgProxy, upstream_of


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest, app: Flask) -> Iterator[str]:
    """Run the test with check-in validating from the database, then from Redis."""
    url = os.environ.get("REDIS_URL") if request.param == "redis" else None
    if request.param == "redis" and not url:
        pytest.skip("needs Redis; set REDIS_URL")
    saved = app.config.get("REDIS_URL")
    app.config["REDIS_URL"] = url
    yield request.param
    forget_checkin_state(app)
    app.config["REDIS_URL"] = saved


@pytest.fixture
def proxy(app: Flask) -> Iterator[PgProxy]:
    pg = PgProxy(upstream_of(make_url(app.config["SQLALCHEMY_DATABASE_URI"])))
    pg.restore()
    yield pg
    pg.cut()


@pytest.fixture
def proxied(app: Flask, proxy: PgProxy) -> Iterator[Flask]:
    """A second app on the same database, through the proxy, sharing the suite's Redis."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    through_proxy = (
        url.difference_update_query(["host", "port"])
        .set(host="127.0.0.1", port=proxy.port)
        .update_query_dict({"connect_timeout": "2"})
    )
    with another_app(
        app,
        SQLALCHEMY_DATABASE_URI=through_proxy.render_as_string(hide_password=False),
        SQLALCHEMY_ENGINE_OPTIONS=dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"]),  # the pool
        REDIS_URL=os.environ.get("REDIS_URL"),
    ) as second:
        yield second
