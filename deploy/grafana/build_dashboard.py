"""Generate deploy/grafana/dashboards/likeguard.json (Grafana 10.x, schemaVersion 39).

The dashboard is written as code so that panel ids, grid positions and the datasource
reference stay consistent; run

    python deploy/grafana/build_dashboard.py

after changing it and commit both files (tests/deploy checks the JSON is up to date). If you
prefer editing in the Grafana UI, export the JSON over the file and port the change back here.

Queries use the raw worker metrics with $__rate_interval, not the recording rules, so the
dashboard works against any Prometheus that scrapes the workers, rules loaded or not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards" / "likeguard.json"

#: Must equal the uid in provisioning/datasources/prometheus.yml.
DATASOURCE = {"type": "prometheus", "uid": "likeguard-prometheus"}

#: Label filter applied to every worker metric.
SEL = 'job=~"$job", instance=~"$instance"'

Panel = dict[str, Any]


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping to a new line."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0
        self.next_id = 1

    def place(self, panel: Panel, w: int, h: int) -> Panel:
        if self.x + w > 24:
            self.newline()
        panel["id"] = self.next_id
        self.next_id += 1
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_height = max(self.row_height, h)
        return panel

    def newline(self) -> None:
        self.y += self.row_height
        self.x = 0
        self.row_height = 0

    def row(self, title: str) -> Panel:
        if self.x:
            self.newline()
        panel = self.place({"type": "row", "title": title, "collapsed": False, "panels": []}, 24, 1)
        self.newline()
        return panel


def target(expr: str, legend: str = "__auto", ref: str = "A", instant: bool = False) -> dict:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
        "range": not instant,
        "instant": instant,
        "editorMode": "code",
    }


def targets(*pairs: tuple[str, str], instant: bool = False) -> list[dict]:
    return [
        target(expr, legend, chr(ord("A") + i), instant) for i, (expr, legend) in enumerate(pairs)
    ]


def thresholds(*steps: tuple[float | None, str]) -> dict:
    return {
        "mode": "absolute",
        "steps": [{"value": value, "color": color} for value, color in steps],
    }


def timeseries(
    title: str,
    description: str,
    tgts: list[dict],
    unit: str = "short",
    stack: bool = False,
    steps: dict | None = None,
    minimum: float | None = 0,
) -> Panel:
    defaults: dict[str, Any] = {
        "unit": unit,
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if stack else 0,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            # Draw the threshold lines, so "how far from paging" is visible.
            "thresholdsStyle": {"mode": "line" if steps else "off"},
        },
        "color": {"mode": "palette-classic"},
        "thresholds": steps or thresholds((None, "green")),
    }
    if minimum is not None:
        defaults["min"] = minimum
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["mean", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(
    title: str,
    description: str,
    tgts: list[dict],
    unit: str = "short",
    steps: dict | None = None,
    decimals: int | None = None,
) -> Panel:
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": steps or thresholds((None, "green")),
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "textMode": "auto",
            "orientation": "auto",
        },
    }


def bargauge(title: str, description: str, tgts: list[dict], unit: str = "short") -> Panel:
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": tgts,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "color": {"mode": "palette-classic"},
                "thresholds": thresholds((None, "green")),
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
        },
    }


def rate(metric: str, by: str = "", extra: str = "") -> str:
    """sum [by (...)] (rate(metric{SEL[,extra]}[$__rate_interval]))"""
    sel = f"{SEL}, {extra}" if extra else SEL
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{sel}}}[$__rate_interval]))"


def quantile(q: float, metric: str, by: str = "") -> str:
    grouping = f"{by}, le" if by else "le"
    return (
        f"histogram_quantile({q}, sum by ({grouping}) "
        f"(rate({metric}_bucket{{{SEL}}}[$__rate_interval])))"
    )


def build() -> dict:
    lay = Layout()
    panels: list[Panel] = []
    add = panels.append

    # --- Overview ------------------------------------------------------------------------
    add(lay.row("Overview"))
    add(
        lay.place(
            stat(
                "Workers up",
                "Worker processes Prometheus scrapes successfully.",
                targets((f"sum(up{{{SEL}}})", "up")),
                steps=thresholds((None, "red"), (1, "green")),
            ),
            4,
            4,
        )
    )
    add(
        lay.place(
            stat(
                "Events/s",
                "Records consumed per second, all types and outcomes.",
                targets((rate("likeguard_events_total"), "events/s")),
                unit="reqps",
            ),
            4,
            4,
        )
    )
    add(
        lay.place(
            stat(
                "Rejected share",
                "Share of consumed records that failed validation (LikeguardRejectRateHigh at 3%, "
                "LikeguardRejectRateCritical at 25%).",
                targets(
                    (
                        rate("likeguard_events_total", extra='outcome="rejected"')
                        + " / "
                        + rate("likeguard_events_total"),
                        "rejected",
                    )
                ),
                unit="percentunit",
                steps=thresholds((None, "green"), (0.03, "orange"), (0.25, "red")),
                decimals=2,
            ),
            4,
            4,
        )
    )
    add(
        lay.place(
            stat(
                "Max event-time lag",
                "Wall clock minus the newest event time processed, worst worker "
                "(LikeguardEventLagHigh at 15 min).",
                targets((f"max(likeguard_event_time_lag_seconds{{{SEL}}})", "lag")),
                unit="s",
                steps=thresholds((None, "green"), (300, "orange"), (900, "red")),
            ),
            4,
            4,
        )
    )
    add(
        lay.place(
            stat(
                "Findings/s",
                "Alerts published per second, all detectors.",
                targets((rate("likeguard_alerts_total"), "findings/s")),
                unit="reqps",
                decimals=3,
            ),
            4,
            4,
        )
    )
    add(
        lay.place(
            stat(
                "Findings in range",
                "Alerts published over the dashboard's time range.",
                targets(
                    (f"sum(increase(likeguard_alerts_total{{{SEL}}}[$__range]))", "findings"),
                    instant=True,
                ),
                decimals=0,
            ),
            4,
            4,
        )
    )

    # --- Pipeline ------------------------------------------------------------------------
    add(lay.row("Pipeline"))
    add(
        lay.place(
            timeseries(
                "Events/s by type and outcome",
                "Consumed records per second. outcome: accepted (counted), duplicate (event_id "
                "already seen: redelivery or replay), late (older than the window retention), "
                "rejected (failed validation, sent to likes.rejects).",
                targets((rate("likeguard_events_total", "type, outcome"), "{{type}} {{outcome}}")),
                unit="reqps",
                stack=True,
            ),
            12,
            8,
        )
    )
    add(
        lay.place(
            timeseries(
                "Rejects/s by reason, and dead letters/s",
                "Validation failures by reason, and records written to the likes.rejects "
                "topic. The two should match; rejects without dead letters fire "
                "LikeguardDeadLettersMissing.",
                targets(
                    (rate("likeguard_rejects_total", "reason"), "{{reason}}"),
                    (rate("likeguard_dead_letters_total"), "dead letters"),
                ),
                unit="reqps",
            ),
            12,
            8,
        )
    )
    add(
        lay.place(
            timeseries(
                "Event-time lag by worker",
                "Wall clock minus the newest event time each worker has processed. Includes "
                "producer delay; a rising line means the worker falls behind.",
                targets(
                    (
                        f"max by (instance) (likeguard_event_time_lag_seconds{{{SEL}}})",
                        "{{instance}}",
                    )
                ),
                unit="s",
                steps=thresholds((None, "green"), (900, "red")),
            ),
            12,
            8,
        )
    )
    add(
        lay.place(
            timeseries(
                "Time since last processed batch, by worker",
                "Seconds since each worker last processed a batch (LikeguardIngestStalled when no "
                "worker has for 10 min).",
                targets(
                    (
                        f"time() - max by (instance) "
                        f"(likeguard_last_processed_timestamp_seconds{{{SEL}}})",
                        "{{instance}}",
                    )
                ),
                unit="s",
                steps=thresholds((None, "green"), (600, "red")),
            ),
            12,
            8,
        )
    )
    add(
        lay.place(
            timeseries(
                "Processing latency (batch taken from Kafka -> alerts published)",
                "Quantiles over all selected workers. Includes the wait for the previous "
                "batch: a worker takes the next batch while one is in the pipeline.",
                targets(
                    (quantile(0.5, "likeguard_processing_latency_seconds"), "p50"),
                    (quantile(0.99, "likeguard_processing_latency_seconds"), "p99"),
                ),
                unit="s",
                steps=thresholds((None, "green"), (5, "red")),
            ),
            8,
            8,
        )
    )
    add(
        lay.place(
            timeseries(
                "Event-time lag per batch",
                "Quantiles over every processed batch of the wall clock at its end minus its "
                "newest event time: how late the freshest finding of a batch can be. "
                "'newest event' is the wall clock minus the newest event time any worker has "
                "processed; unlike the per-worker lag it keeps rising when processing stops.",
                targets(
                    (quantile(0.5, "likeguard_batch_event_time_lag_seconds"), "p50"),
                    (quantile(0.99, "likeguard_batch_event_time_lag_seconds"), "p99"),
                    (
                        f"time() - max(likeguard_newest_event_timestamp_seconds{{{SEL}}})",
                        "newest event",
                    ),
                ),
                unit="s",
                steps=thresholds((None, "green"), (1, "orange"), (900, "red")),
            ),
            8,
            8,
        )
    )
    add(
        lay.place(
            timeseries(
                "Batch size (events)",
                "Events per batch taken from Kafka. Small batches at high load mean per-batch "
                "costs (one Redis round trip each) dominate.",
                targets(
                    (quantile(0.5, "likeguard_batch_size_events"), "p50"),
                    (quantile(0.99, "likeguard_batch_size_events"), "p99"),
                    (
                        f"{rate('likeguard_batch_size_events_sum')} / "
                        f"{rate('likeguard_batch_size_events_count')}",
                        "mean",
                    ),
                ),
            ),
            8,
            8,
        )
    )

    # --- Event-time order: the workers' merges and the swarm stage -------------------------
    add(lay.row("Event-time merge and swarm stage"))
    add(
        lay.place(
            timeseries(
                "Swarm stage likes/s",
                "Likes through the swarm stage (stream/swarm_stage.py), redeliveries included. "
                "Only the worker holding the stage's one partition counts; a gap while the "
                "group moves it is expected after a worker dies.",
                targets((rate("likeguard_swarm_stage_likes_total", by="instance"), "{{instance}}")),
            ),
            8,
            8,
        )
    )
    add(
        lay.place(
            timeseries(
                "Swarm stage event-time lag",
                "Wall clock minus the event time of the newest like through the stage, as of its "
                "last batch. It waits for a source partition with no fresh word (a dead worker's) "
                "up to LIKEGUARD_SWARM_STAGE_WAIT_SECONDS.",
                targets(
                    (
                        f"likeguard_swarm_stage_event_time_lag_seconds{{{SEL}}} > 0",
                        "{{instance}}",
                    )
                ),
                unit="s",
            ),
            8,
            8,
        )
    )
    add(
        lay.place(
            timeseries(
                "Merge: held records, forced and late/s",
                "Records the event-time merges hold (worker merges and the swarm stage), and "
                "records released out of event-time order: forced by the held cap, or late "
                "(older than one already released). Both should stay at zero.",
                targets(
                    (f"sum(likeguard_merge_held_records{{{SEL}}})", "held"),
                    (rate("likeguard_merge_forced_releases_total"), "forced/s"),
                    (rate("likeguard_merge_late_records_total"), "late/s"),
                ),
            ),
            8,
            8,
        )
    )

    # --- Redis ---------------------------------------------------------------------------
    add(lay.row("Redis"))
    add(
        lay.place(
            timeseries(
                "Redis call duration p99 by operation",
                "Includes the network round trip. One call per batch carries many events.",
                targets(
                    (
                        quantile(0.99, "likeguard_redis_call_duration_seconds", "operation"),
                        "{{operation}}",
                    )
                ),
                unit="s",
            ),
            8,
            8,
        )
    )
    add(
        lay.place(
            timeseries(
                "Redis calls/s by operation",
                "",
                targets(
                    (
                        rate("likeguard_redis_call_duration_seconds_count", "operation"),
                        "{{operation}}",
                    )
                ),
                unit="reqps",
            ),
            8,
            8,
        )
    )
    add(
        lay.place(
            timeseries(
                "Redis errors/s by operation",
                "Failed Redis calls (LikeguardRedisErrors, LikeguardRedisErrorRatioHigh).",
                targets((rate("likeguard_redis_errors_total", "operation"), "{{operation}}")),
                unit="reqps",
            ),
            8,
            8,
        )
    )

    # --- Findings ------------------------------------------------------------------------
    add(lay.row("Findings"))
    add(
        lay.place(
            timeseries(
                "Findings/s by detector",
                "Alerts published per second (one per finding; a cool-down keeps repeats of "
                "the same subject quiet).",
                targets((rate("likeguard_alerts_total", "detector"), "{{detector}}")),
                unit="reqps",
                stack=True,
            ),
            12,
            8,
        )
    )
    add(
        lay.place(
            timeseries(
                "Findings/s by severity",
                "low / medium / high, from each finding's score relative to its detector's "
                "threshold.",
                targets((rate("likeguard_alerts_total", "severity"), "{{severity}}")),
                unit="reqps",
                stack=True,
            ),
            12,
            8,
        )
    )
    add(
        lay.place(
            timeseries(
                "Findings/s by detector: now vs same time yesterday",
                "30-minute rate now (solid) and a day earlier (the LikeguardAlertSurge baseline, "
                "which fires above 3x yesterday and 0.02/s).",
                targets(
                    (
                        f"sum by (detector) (rate(likeguard_alerts_total{{{SEL}}}[30m]))",
                        "{{detector}} now",
                    ),
                    (
                        f"sum by (detector) (rate(likeguard_alerts_total{{{SEL}}}[30m] offset 1d))",
                        "{{detector}} yesterday",
                    ),
                ),
                unit="reqps",
            ),
            12,
            8,
        )
    )
    add(
        lay.place(
            bargauge(
                "Findings in range by detector and severity",
                "Alerts published over the dashboard's time range.",
                targets(
                    (
                        f"sum by (detector, severity) "
                        f"(increase(likeguard_alerts_total{{{SEL}}}[$__range]))",
                        "{{detector}} {{severity}}",
                    ),
                    instant=True,
                ),
            ),
            12,
            8,
        )
    )

    return {
        "uid": "likeguard-overview",
        "title": "likeguard",
        "description": "Fake-engagement detector: pipeline health and findings.",
        "tags": ["likeguard"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "job",
                    "label": "Job",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {"query": "label_values(likeguard_events_total, job)", "refId": "job"},
                    "definition": "label_values(likeguard_events_total, job)",
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    # No custom allValue: "All" expands to the discovered jobs, never ".*",
                    # which would also match Prometheus' own scrape jobs in up{...}.
                    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                    "sort": 1,
                },
                {
                    "name": "instance",
                    "label": "Worker",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {
                        "query": 'label_values(likeguard_events_total{job=~"$job"}, instance)',
                        "refId": "instance",
                    },
                    "definition": 'label_values(likeguard_events_total{job=~"$job"}, instance)',
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                    "sort": 1,
                },
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
