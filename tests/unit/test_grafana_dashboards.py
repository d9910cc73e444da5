"""The dashboards under ops/grafana/ are code: the committed JSON is what the generator builds,
every panel queries something, and every query names only series of the metric contract
(ops/metric_names.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import yaml

from ops import metric_names
from ops.grafana import dashboards
from tests.support.promql import metric_names as names_in

PROVISIONING = Path(dashboards.__file__).parent / "provisioning"


def committed() -> dict[str, str]:
    return {
        path.name: path.read_text() for path in sorted(dashboards.DASHBOARDS_DIR.glob("*.json"))
    }


def loaded() -> list[dict]:
    return [json.loads(text) for text in committed().values()]


def panels(data: dict) -> list[dict]:
    """A dashboard's panels, rows left out (those inside collapsed rows included)."""
    found = []
    for panel in data["panels"]:
        found.extend(panel.get("panels", []))
        if panel["type"] != "row":
            found.append(panel)
    return found


def test_the_committed_json_is_what_the_generator_builds() -> None:
    built = dashboards.rendered()
    on_disk = committed()
    assert (
        sorted(on_disk)
        == sorted(built)
        == ["gate.json", "money.json", "onsale.json", "platform.json"]
    )
    stale = [name for name in built if on_disk[name] != built[name]]
    assert stale == [], f"{stale} differ from the generator: run `make dashboards` and commit"


def test_every_panel_has_a_query() -> None:
    empty = [
        (data["title"], panel["title"])
        for data in loaded()
        for panel in panels(data)
        if not any(target.get("expr", "").strip() for target in panel.get("targets", []))
    ]
    assert empty == []
    assert sum(len(panels(data)) for data in loaded()) > 40


def test_every_query_reads_only_series_of_the_metric_contract() -> None:
    queries = dashboards.panel_queries()
    assert queries
    unknown = [
        (query.dashboard, query.panel, sorted(names_in(query.expr) - metric_names.ALL))
        for query in queries
        if not names_in(query.expr) or names_in(query.expr) - metric_names.ALL
    ]
    assert unknown == []


def test_every_metric_of_the_app_and_the_workers_is_on_a_dashboard() -> None:
    shown = set().union(*(names_in(query.expr) for query in dashboards.panel_queries()))

    def family(name: str) -> str:
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix):
                return name.removesuffix(suffix)
        return name

    missing = {family(name) for name in metric_names.WEB | metric_names.WORKER} - {
        family(name) for name in shown
    }
    assert missing == set()


def test_dashboard_uids_are_unique_and_panel_ids_and_titles_unique_within_each() -> None:
    uids = Counter(data["uid"] for data in loaded())
    assert all(uid.startswith("bilheteria-") for uid in uids)
    assert [uid for uid, count in uids.items() if count > 1] == []
    titles = Counter(data["title"] for data in loaded())
    assert [title for title, count in titles.items() if count > 1] == []
    for data in loaded():
        ids = [panel["id"] for panel in data["panels"]]
        assert len(ids) == len(set(ids)), data["title"]
        titles = Counter(panel["title"] for panel in panels(data))
        assert [title for title, count in titles.items() if count > 1] == [], data["title"]
        for panel in panels(data):
            refs = [target["refId"] for target in panel["targets"]]
            assert "" not in refs and len(refs) == len(set(refs)), (data["title"], panel["title"])


def test_every_panel_reads_the_provisioned_prometheus_through_the_datasource_variable() -> None:
    [source] = yaml.safe_load((PROVISIONING / "datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["uid"] == dashboards.DATASOURCE_UID == "prometheus"
    assert source["type"] == "prometheus"
    for data in loaded():
        [variable] = data["templating"]["list"]
        assert variable["type"] == "datasource" and variable["query"] == "prometheus"
        assert variable["current"]["value"] == source["uid"]
        for panel in panels(data):
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_the_dashboards_provider_loads_the_generated_folder() -> None:
    [provider] = yaml.safe_load((PROVISIONING / "dashboards/bilheteria.yml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "${BILHETERIA_DASHBOARDS}"
    assert PROVISIONING.parent / "dashboards" == dashboards.DASHBOARDS_DIR


def test_panel_queries_with_a_window_are_ready_for_prometheus() -> None:
    raw = dashboards.panel_queries()
    ready = dashboards.panel_queries(window="1m")
    assert [(q.dashboard, q.panel) for q in raw] == [(q.dashboard, q.panel) for q in ready]
    assert any("$__rate_interval" in q.expr for q in raw)
    assert any("$__range" in q.expr for q in raw)
    assert [q.expr for q in ready if "$" in q.expr] == []
    assert ("Bilheteria / Gate", "Scans per second, by path") in {
        (q.dashboard, q.panel) for q in ready
    }


def test_the_series_names_are_read_from_an_expression() -> None:
    expr = (
        "topk(5, sum by (le, endpoint) (rate(flask_http_request_duration_seconds_bucket"
        '{status=~"5..", job="bilheteria-web"}[$__rate_interval])) or vector(0))'
        " / on (job) group_left(instance) "
        "up{job='x'} > bool 0.5 unless absent(pg_up offset 5m) and redis_up[5m:1m]"
    )
    assert names_in(expr) == {
        "flask_http_request_duration_seconds_bucket",
        "up",
        "pg_up",
        "redis_up",
    }
