"""Alertmanager, Grafana and compose files under deploy/: checked by reading.

Docker is not needed (nor run): these tests parse the files and check the promises the rest
of deploy/ and docs/operations.md make about them.
"""

from __future__ import annotations

import importlib.util
import json
import re
from types import ModuleType
from typing import Any

import pytest

from stream.config import Settings
from tests.deploy.support import (
    ALERTMANAGER_CONFIG,
    COMPOSE,
    DASHBOARD,
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    DEPLOY,
    OPERATIONS_DOC,
    RULES,
    assert_ok,
    github_anchors,
    load_yaml,
    run,
)

# --- Alertmanager -------------------------------------------------------------------------


def test_amtool_check_config(amtool: str) -> None:
    assert_ok(run(amtool, "check-config", ALERTMANAGER_CONFIG))


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            ["service=likeguard", "severity=page", "alertname=LikeguardIngestStalled"],
            "likeguard-page",
        ),
        (
            [
                "service=likeguard",
                "severity=ticket",
                "alertname=LikeguardAlertSurge",
                "detector=burst",
            ],
            "likeguard-ticket",
        ),
        (["alertname=SomethingElse", "severity=page"], "default"),
    ],
)
def test_alertmanager_routes(amtool: str, labels: list[str], receiver: str) -> None:
    result = run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receiver}",
        *labels,
    )
    assert_ok(result)


def _alert_names(yaml: ModuleType) -> set[str]:
    groups = load_yaml(yaml, RULES)["groups"]
    return {r["alert"] for g in groups for r in g["rules"] if "alert" in r}


def test_inhibit_rules_name_existing_alerts(yaml: ModuleType) -> None:
    """A misspelt alertname in an inhibit rule silently inhibits nothing."""
    names = _alert_names(yaml)
    config = load_yaml(yaml, ALERTMANAGER_CONFIG)
    assert config["inhibit_rules"], "no inhibit rules"
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            match = re.fullmatch(r'alertname(=~|=)"(.*)"', matcher)
            if not match:
                continue
            op, value = match.groups()
            hits = {n for n in names if re.fullmatch(value, n)} if op == "=~" else {value} & names
            assert hits, f"inhibit matcher {matcher!r} matches no alert rule"
            if op == "=~":  # each alternative must name something, not just the whole regex
                for part in value.split("|"):
                    assert any(re.fullmatch(part, n) for n in names), (
                        f"{part!r} in inhibit matcher {matcher!r} matches no alert rule"
                    )
        assert "job" in rule.get("equal", []), "inhibit across jobs would mute other stacks"


# --- Grafana ------------------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_dashboard_shape() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] == 39
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], f"panel {panel['title']!r} has no query"
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), panel["title"]
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("events/s", "rejects", "lag", "latency", "batch size", "redis", "findings"):
        assert topic in titles, f"no panel about {topic}"


def test_dashboard_datasource_matches_provisioning(yaml: ModuleType) -> None:
    provisioned = load_yaml(yaml, DATASOURCES)["datasources"]
    prometheus = [d for d in provisioned if d["type"] == "prometheus"]
    assert len(prometheus) == 1
    uid = prometheus[0]["uid"]
    refs = [
        node["datasource"]
        for node in _walk(_dashboard())
        if isinstance(node.get("datasource"), dict)
    ]
    assert refs
    for ref in refs:
        if ref.get("type") == "grafana":  # built-in annotations
            continue
        assert ref == {"type": "prometheus", "uid": uid}, ref


def test_dashboard_is_generated_from_build_script() -> None:
    spec = importlib.util.spec_from_file_location(
        "build_dashboard", DEPLOY / "grafana" / "build_dashboard.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert DASHBOARD.read_text(encoding="utf-8") == module.render(), (
        "deploy/grafana/dashboards/likeguard.json is stale: "
        "run python deploy/grafana/build_dashboard.py"
    )


# --- compose ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose(yaml: ModuleType) -> dict[str, Any]:
    return load_yaml(yaml, COMPOSE)


def test_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("kafka", "kafka-init", "redis", "worker", "prometheus", "alertmanager", "grafana"):
        assert name in services, f"compose has no {name} service"


def test_compose_worker(compose: dict[str, Any], yaml: ModuleType) -> None:
    worker = compose["services"]["worker"]
    env = worker["environment"]
    assert env["LIKEGUARD_BROKER"] == "kafka://kafka:9092"
    assert env["LIKEGUARD_REDIS_URL"] == "redis://redis:6379/0"
    # Scaling with --scale needs no fixed name and no host port per replica.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["deploy"]["replicas"] >= 1
    dockerfile = COMPOSE.parent / worker["build"]["context"] / worker["build"]["dockerfile"]
    assert dockerfile.resolve() == (DEPLOY / "Dockerfile").resolve()
    assert worker["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    # Prometheus finds the replicas by the service name, on the metrics port.
    scrape = load_yaml(yaml, DEPLOY / "prometheus" / "prometheus.yml")["scrape_configs"]
    job = next(j for j in scrape if j["job_name"] == "likeguard")
    dns = job["dns_sd_configs"][0]
    assert dns["names"] == ["worker"]
    assert str(dns["port"]) == env["LIKEGUARD_METRICS_PORT"]


def test_compose_kafka_is_kraft_and_topics_are_created(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"]
    assert not any("ZOOKEEPER" in key for key in env)
    script = compose["services"]["kafka-init"]["command"][0]
    creates = {
        m.group(1): m.group(0)
        for m in re.finditer(r"create --topic (\S+)[^\n]*(?:\\\n[^\n]*)*", script)
    }
    stage = Settings(app_id=compose_env(compose).get("LIKEGUARD_APP_ID", "likeguard"))
    swarm_topic = stage.swarm_stage_topic
    assert set(creates) == {"likes", "accounts", "alerts", "likes.rejects", swarm_topic}
    assert "--partitions 12" in creates["likes"]
    assert "--partitions 1 " in creates[swarm_topic]  # one swarm stage for all workers
    assert "cleanup.policy=compact" in creates["accounts"]
    # Compose interpolates $VAR itself; shell variables must be written $$VAR.
    assert not re.search(r"(?<!\$)\$(?!\$)", script.replace("$$", "")), "unescaped $ in script"


def test_compose_redis_memory_is_capped(compose: dict[str, Any]) -> None:
    command = " ".join(str(part) for part in compose["services"]["redis"]["command"])
    assert re.search(r"--maxmemory \d+[kmg]b", command)
    assert re.search(r"--maxmemory-policy (volatile|allkeys)-\w+", command)


def test_compose_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} does not exist"
    prometheus_mounts = " ".join(compose["services"]["prometheus"]["volumes"])
    assert "./prometheus/rules:" in prometheus_mounts
    grafana_mounts = " ".join(compose["services"]["grafana"]["volumes"])
    assert "./grafana/provisioning:/etc/grafana/provisioning" in grafana_mounts


def test_grafana_provider_path_is_mounted(compose: dict[str, Any], yaml: ModuleType) -> None:
    provider = load_yaml(yaml, DASHBOARD_PROVIDERS)["providers"][0]
    targets = [v.split(":")[1] for v in compose["services"]["grafana"]["volumes"]]
    assert provider["options"]["path"] in targets


# --- docs ---------------------------------------------------------------------------------


def test_operations_doc_internal_links_resolve() -> None:
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    anchors = github_anchors(text)
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links, "no internal links found"
    assert not links - anchors, f"links to missing sections: {sorted(links - anchors)}"


def compose_env(compose: dict[str, Any]) -> dict[str, str]:
    """The environment of the compose file's first worker service (``LIKEGUARD_*``)."""
    for service in compose["services"].values():
        env = service.get("environment") or {}
        if isinstance(env, dict) and "LIKEGUARD_PARTITIONS" in env:
            return {str(k): str(v) for k, v in env.items()}
    raise AssertionError("no worker service with LIKEGUARD_PARTITIONS")
