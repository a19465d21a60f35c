"""Prometheus rules, their unit tests, and the metric names rules and dashboards rely on.

promtool checks syntax and runs deploy/prometheus/tests/likeguard.rules.test.yml; the checks
below catch what promtool cannot: a misspelt metric name is valid PromQL that silently matches
nothing, so an alert on it would never fire.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client import CollectorRegistry

from stream.metrics import Metrics
from tests.deploy.support import (
    DASHBOARD,
    OPERATIONS_DOC,
    PROMETHEUS_CONFIG,
    RULE_TESTS,
    RULES,
    assert_ok,
    github_anchors,
    load_yaml,
    run,
)


def _exported_metrics() -> frozenset[str]:
    """Every likeguard metric the worker exports, read off a fresh :class:`Metrics` registry:
    counters with ``_total``, histograms by base name."""
    names = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        if not family.name.startswith("likeguard_"):
            continue
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return frozenset(names)


#: Every metric the worker exports (stream/metrics.py). A rule, dashboard panel or rule test
#: that names anything else is a typo.
KNOWN_METRICS = _exported_metrics()

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# A raw metric name; the lookbehind skips the middle part of recorded series names
# (job:likeguard_events:rate5m) and of longer identifiers.
_METRIC = re.compile(r"(?<![\w:])likeguard_[a-z_]+")
# A recorded series, level:metric:operations (e.g. job:likeguard_events_rejected:ratio_rate5m).
_RECORDED = re.compile(r"\b[a-z_]+:likeguard_[a-z_]+:[a-z0-9_]+")
_SEVERITIES = {"page", "ticket"}


def _base_name(name: str) -> str:
    if name in KNOWN_METRICS:
        return name
    for suffix in _HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in KNOWN_METRICS:
            return name[: -len(suffix)]
    return name


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        exprs.append(query["query"] if isinstance(query, dict) else str(query or ""))
    return exprs


def _sources() -> dict[str, str]:
    """Text that names metrics: the rules, their unit tests and every dashboard query."""
    return {
        str(RULES.name): RULES.read_text(encoding="utf-8"),
        str(RULE_TESTS.name): RULE_TESTS.read_text(encoding="utf-8"),
        str(DASHBOARD.name): "\n".join(_dashboard_exprs()),
    }


# --- promtool -----------------------------------------------------------------------------


def test_promtool_check_rules(promtool: str) -> None:
    assert_ok(run(promtool, "check", "rules", RULES))


def test_promtool_test_rules(promtool: str) -> None:
    assert_ok(run(promtool, "test", "rules", RULE_TESTS))


def test_promtool_check_config(promtool: str) -> None:
    # Also checks that the rule_files glob finds the rules relative to the config.
    result = run(promtool, "check", "config", PROMETHEUS_CONFIG)
    assert_ok(result)
    assert "1 rule files found" in result.stdout + result.stderr


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Each panel query, with Grafana's variables filled in, must parse as PromQL."""
    substitutions = {
        "$__rate_interval": "1m",
        "$__interval": "1m",
        "$__range": "6h",
        "$job": "likeguard",
        "$instance": ".*",
    }
    rules = []
    for i, expr in enumerate(_dashboard_exprs()):
        if expr.startswith("label_values("):
            continue  # Grafana template query, not PromQL
        for variable, value in substitutions.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unsubstituted Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{i}:check", "expr": expr})
    assert rules, "dashboard has no queries"
    path = tmp_path / "dashboard-queries.rules.yml"
    # JSON is valid YAML: no PyYAML needed here.
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert_ok(run(promtool, "check", "rules", path))


# --- metric names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source", ["likeguard.rules.yml", "likeguard.rules.test.yml", "likeguard.json"]
)
def test_only_known_metric_names(source: str) -> None:
    text = _sources()[source]
    used = {_base_name(m) for m in _METRIC.findall(text)}
    assert used, f"{source} names no likeguard metric at all"
    unknown = sorted(used - KNOWN_METRICS)
    assert not unknown, f"{source} uses metrics the worker does not export: {unknown}"


def test_metric_name_check_catches_typos() -> None:
    """The check above must flag a misspelling (guards the regex itself)."""
    text = "rate(likeguard_event_total[5m]) and likeguard_processing_latency_second_bucket"
    used = {_base_name(m) for m in _METRIC.findall(text)}
    assert used - KNOWN_METRICS == {
        "likeguard_event_total",
        "likeguard_processing_latency_second_bucket",
    }
    assert _METRIC.findall("job:likeguard_events:rate5m") == []


def test_recorded_series_are_defined() -> None:
    rules_text = RULES.read_text(encoding="utf-8")
    defined = set(re.findall(r"^\s*-\s*record:\s*(\S+)\s*$", rules_text, re.MULTILINE))
    assert defined, "no recording rules found"
    for source, text in _sources().items():
        used = set(_RECORDED.findall(text))
        assert not used - defined, f"{source} reads undefined recorded series: {used - defined}"


# --- structure of the alert rules ---------------------------------------------------------


def _alert_rules(yaml: ModuleType) -> list[dict]:
    groups = load_yaml(yaml, RULES)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_alerts_have_severity_and_annotations(yaml: ModuleType) -> None:
    alerts = _alert_rules(yaml)
    assert len(alerts) >= 5
    names = [a["alert"] for a in alerts]
    assert len(names) == len(set(names)), "duplicate alert names"
    for alert in alerts:
        labels = alert.get("labels", {})
        assert labels.get("severity") in _SEVERITIES, alert["alert"]
        assert labels.get("service") == "likeguard", alert["alert"]
        annotations = alert.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key), f"{alert['alert']} has no {key}"


def test_runbook_links_point_at_existing_sections(yaml: ModuleType) -> None:
    if not OPERATIONS_DOC.exists():
        pytest.fail(f"{OPERATIONS_DOC} is missing: the alerts' runbook links point into it")
    anchors = github_anchors(OPERATIONS_DOC.read_text(encoding="utf-8"))
    for alert in _alert_rules(yaml):
        url = alert["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/operations.md", f"{alert['alert']}: {url}"
        assert anchor in anchors, f"{alert['alert']}: no heading for #{anchor} in {path}"


def test_every_alert_has_a_firing_and_a_quiet_case(yaml: ModuleType) -> None:
    tests = load_yaml(yaml, RULE_TESTS)["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in _alert_rules(yaml)}
    assert not names - firing, f"no case where these fire: {sorted(names - firing)}"
    assert not names - quiet, f"no case where these stay quiet: {sorted(names - quiet)}"
    assert not (firing | quiet) - names, f"tests name unknown alerts: {(firing | quiet) - names}"
