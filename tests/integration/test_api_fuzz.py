"""Every operation of the OpenAPI spec, fuzzed by schemathesis: whatever the body, query or path,
the API answers without a server error.

Each operation is called with the token of whoever uses it (a partner for the catalogue API, a
customer for holds, orders and the line, a gate device for check-in). Requests run outside the
test's app context, each in its own as in production (a shared ``g`` would keep the first
caller's user).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from app.extensions import db
from tests.support.builders import api_token, make_event, make_partner, make_user
from tests.support.database import empty_domain_tables
from tests.support.gate import device, open_event
from tests.support.shop import CUSTOMER_PASSWORD

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))


@pytest.fixture
def world(app: Flask) -> Iterator[dict[str, Any]]:
    """A partner with an event on sale, a customer and a gate device; their tokens."""
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a crash answers 500, as in production
    with app.app_context():
        partner = make_partner("Aurora")
        make_user("alice", "Partner", partner)
        make_user("root", "Admin")
        on_sale = make_event(partner, "On sale")
        on_sale.publish()
        db.session.commit()
        gate = device(partner, open_event(partner, "At the door"))
        client = app.test_client()
        tokens = {
            "partner": api_token(client, "alice"),
            "admin": api_token(client, "root"),
            "gate": gate,
        }
        signed_up = client.post(
            "/api/v1/customers/",
            json={"name": "Ana Souza", "email": "ana@example.com", "password": CUSTOMER_PASSWORD},
        )
        assert signed_up.status_code == 201, signed_up.get_json()
        tokens["customer"] = api_token(client, "ana@example.com", CUSTOMER_PASSWORD)
        db.session.remove()
    yield tokens
    app.config["PROPAGATE_EXCEPTIONS"] = None
    with app.app_context():
        empty_domain_tables(app)


def _caller(path: str) -> str:
    if path.startswith("/api/v1/checkin"):
        return "gate"
    if path.startswith(("/api/v1/events", "/api/v1/sections", "/api/v1/spots")):
        return "partner"
    if path.startswith("/api/{version}/_openapi"):
        return "admin"
    return "customer"


def test_no_operation_answers_a_server_error(app: Flask, world: dict[str, Any]) -> None:
    # schemathesis' pytest loader (from_fixture) sets a node attribute pytest 9 no longer has:
    # each operation's strategy is run here with Hypothesis instead.
    schema = schemathesis.openapi.from_wsgi("/api/v1/_openapi", app, headers=world["admin"])
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 25  # the spec has every operation, not an error page

    for operation in operations:
        try:
            _fuzz(operation, world[_caller(operation.path)])
        except Exception as exc:  # noqa: BLE001 - every operation's failure is reported
            failures[f"{operation.method.upper()} {operation.path}"] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{name}: {error}" for name, error in failures.items())


def _fuzz(operation: Any, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    call()
