"""Prometheus' configuration and alert rules under ops/prometheus/ are code: promtool checks the
configuration and the rules and runs the rules' unit tests (alerts_test.yml), which show each
alert firing on series that should fire it and quiet on series that should not. Every alert
carries a severity, a summary, a description and a runbook section that exists, and reads only
series of the metric contract (ops/metric_names.py).

The promtool tests skip when promtool is not on PATH (Debian's ``prometheus`` package has it),
unless REQUIRE_PROMETHEUS is set, as .ci/run does: then a missing promtool fails them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ops import metric_names
from ops.grafana import dashboards
from tests.support.imports import ROOT
from tests.support.promql import metric_names as names_in

PROMETHEUS = ROOT / "ops" / "prometheus"
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"

# What issue #15 asks an alert for, by the alert that answers it.
ALERTS = {
    "BilheteriaHigh5xxRate",  # 5xx rate
    "BilheteriaCheckoutSlow",  # checkout p99
    "BilheteriaSeatConflictSurge",  # hold-conflict surge
    "BilheteriaSettlementMismatch",  # settlement mismatch
    "BilheteriaScanLogBacklog",  # scan-log backlog
    "BilheteriaCeleryQueueStale",  # Celery queue age
    "BilheteriaWorkerDown",  # a worker gone (up == 0)
    "BilheteriaNoWorker",  # no worker at all (up == 0 everywhere, or absent)
    "BilheteriaDatabaseDown",  # pg_up == 0 or its exporter down
    "BilheteriaRedisDown",  # redis_up == 0 or its exporter down
    "BilheteriaAppDown",  # the app's target down (or absent)
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool not found on PATH (apt-get install prometheus)"
        if os.environ.get("REQUIRE_PROMETHEUS"):
            pytest.fail(f"{message} and REQUIRE_PROMETHEUS is set")
        pytest.skip(message)
    return path


def run(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def deployed(tmp_path: Path) -> Path:
    """prometheus.yml and alerts.yml copied as installed, with the bearer token file beside
    them (promtool checks that it exists)."""
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(PROMETHEUS / name, tmp_path / name)
    (tmp_path / "bilheteria-metrics-token").write_text("a-token\n")
    return tmp_path / "prometheus.yml"


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


# ---------------------------------------------------------------------------------------------
# promtool


def test_promtool_finds_the_configuration_valid(promtool: str, tmp_path: Path) -> None:
    result = run(promtool, "check", "config", str(deployed(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout


def test_promtool_finds_the_alert_rules_valid(promtool: str) -> None:
    result = run(promtool, "check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    result = run(promtool, "test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_rule_unit_tests_fail_when_an_alert_is_broken(promtool: str, tmp_path: Path) -> None:
    # The 5xx alert made ten times less sensitive: its firing case must now fail.
    alerts = (PROMETHEUS / "alerts.yml").read_text()
    broken = alerts.replace("          ) > 0.05\n", "          ) > 0.5\n")
    assert broken != alerts
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(PROMETHEUS / "alerts_test.yml", tmp_path / "alerts_test.yml")
    result = run(promtool, "test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "alertname: BilheteriaHigh5xxRate" in result.stdout + result.stderr


def test_every_dashboard_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    queries = dashboards.panel_queries(window="5m")
    recording = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": query.expr}
                    for n, query in enumerate(queries)
                ],
            }
        ]
    }
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(recording))
    result = run(promtool, "check", "rules", "queries.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


# ---------------------------------------------------------------------------------------------
# what the files say


def test_prometheus_scrapes_the_app_with_its_token_the_workers_and_the_exporters() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(metric_names.BY_JOB)
    web = jobs["bilheteria-web"]
    assert web["metrics_path"] == "/metrics"
    assert web["authorization"] == {
        "type": "Bearer",
        "credentials_file": "bilheteria-metrics-token",
    }
    targets = {name: job["static_configs"][0]["targets"] for name, job in jobs.items()}
    assert targets["bilheteria-worker"] == ["127.0.0.1:9540"]
    assert targets["postgres"] == ["127.0.0.1:9187"]
    assert targets["redis"] == ["127.0.0.1:9121"]


def test_the_alerts_are_those_the_issue_asks_for() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    assert set(names) == ALERTS


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_section() -> None:
    anchors = {
        github_anchor(line.removeprefix("## "))
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, rule["alert"]
        assert all(text.strip() for text in annotations.values()), rule["alert"]
        page, _, anchor = annotations["runbook"].partition("#")
        assert page == "docs/RUNBOOK.md" and anchor in anchors, rule["alert"]


def test_every_alert_reads_only_series_of_the_metric_contract() -> None:
    unknown = {
        rule["alert"]: names_in(rule["expr"]) - metric_names.ALL
        for rule in rules()
        if not names_in(rule["expr"]) or names_in(rule["expr"]) - metric_names.ALL
    }
    assert unknown == {}


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    fires = {check["alertname"] for check in checks if check.get("exp_alerts")}
    quiet = {check["alertname"] for check in checks if not check.get("exp_alerts")}
    assert fires == quiet == ALERTS
