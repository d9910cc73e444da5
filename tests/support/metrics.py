"""Reading the app's /metrics as Prometheus would: one sample's value, by name and labels."""

from __future__ import annotations

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families


def scrape(client: FlaskClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def sample(body: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    return sum(
        s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


def value(client: FlaskClient, name: str, **labels: str) -> float:
    return sample(scrape(client), name, **labels)
