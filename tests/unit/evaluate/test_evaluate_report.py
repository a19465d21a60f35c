"""Tables, report files and the chart, from hand-made scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.evaluate.metrics import (
    Truth,
    check_targets,
    flags_from_alerts,
    score_detectors,
    score_flags,
    union_flags,
)
from stream.evaluate.report import (
    ScenarioResult,
    Table,
    chart_series,
    format_seconds,
    render_markdown,
    render_text,
    result_tables,
    write_chart,
    write_reports,
)

TRUTH = Truth.from_json(
    {
        "attacks": [
            {"kind": "burst", "attack_id": "burst-1", "accounts": ["b1"], "start": 0.0},
            {"kind": "swarm", "attack_id": "swarm-1", "accounts": ["s1", "s2"], "start": 0.0},
        ],
        "organic_accounts": ["o1", "o2", "o3", "o4"],
        "new_normal_accounts": [],
    }
)
ALERTS = [
    {"detector": "burst", "event_time": 45.0, "accounts": ["b1", "o1"]},
    {"detector": "swarm", "event_time": 600.0, "accounts": ["s1"]},
]


def make_result(name: str = "seed-1") -> ScenarioResult:
    by_detector = flags_from_alerts(ALERTS)
    methods = {
        "likeguard": score_flags(union_flags(by_detector), TRUTH),
        "fraudar": score_flags({"s1": 900.0, "s2": 900.0, "o2": 900.0}, TRUTH),
        "threshold": score_flags({"b1": 60.0}, TRUTH),
    }
    result = ScenarioResult(
        name, methods, score_detectors(by_detector, TRUTH, {"burst": 1, "swarm": 1})
    )
    result.targets = check_targets(
        methods["likeguard"], {"FRAUDAR": methods["fraudar"], "threshold": methods["threshold"]}
    )
    return result


def test_table_rejects_ragged_rows() -> None:
    with pytest.raises(ValueError, match="2 cells"):
        Table("t", ("a", "b"), (("1",),), "<<")


def test_text_and_markdown_tables() -> None:
    table = Table("T", ("name", "value"), (("a|b", "1.000"), ("long name", "2")), "<>")
    lines = render_text(table).splitlines()
    assert lines[0] == "T"
    assert lines[2] == "---------  -----"
    assert lines[3] == "a|b        1.000"
    assert lines[4] == "long name      2"
    md = render_markdown(table)
    assert "|:-----|--:|" in md
    assert "| a\\|b | 1.000 |" in md  # a pipe in a cell must not split the cell


def test_format_seconds() -> None:
    assert format_seconds(0.4) == "0 s"
    assert format_seconds(119.0) == "119 s"
    assert format_seconds(120.0) == "2.0 min"
    assert format_seconds(float("nan")) == "-"


def test_result_tables_show_the_numbers() -> None:
    text = "\n\n".join(render_text(t) for t in result_tables(make_result()))
    recall = next(line for line in text.splitlines() if line.startswith("swarm "))
    # swarm: likeguard 1 of 2 accounts, FRAUDAR 2 of 2, threshold none.
    assert recall.split()[-3:] == ["0.500", "1.000", "0.000"]
    delays = [line for line in text.splitlines() if line.startswith("burst ")]
    assert "45 s / 45 s (1/1)" in delays[1]
    overall = next(line for line in text.splitlines() if line.startswith("likeguard  "))
    # 3 flagged, 2 TP, 1 FP (o1), 1 FN (s2); P = R = F1 = 2/3; organic 1 of 4.
    assert overall.split() == [
        "likeguard",
        "3",
        "2",
        "1",
        "1",
        "0.667",
        "0.667",
        "0.667",
        "1/4",
        "25.000%",
    ]
    targets = {
        line[:20].strip(): line[20:].split()
        for line in text.split("Targets of issue 3")[1].splitlines()[3:]
    }
    assert targets["organic FP share"] == ["25.000%", "<=", "0.1%", "FAIL"]
    assert targets["median delay swarm"] == ["10.0", "min", "<", "300", "s", "FAIL"]
    assert targets["F1 above threshold"] == ["0.667", ">", "0.500", "PASS"]
    section = text.split("likeguard detectors")[1]
    detector = next(line for line in section.splitlines() if line.startswith("burst "))
    assert detector.split()[:7] == ["burst", "1", "2", "1", "1", "0", "0.500"]


def test_chart_series() -> None:
    overall_groups, kinds, overall, by_kind = chart_series(make_result())
    assert overall_groups == ["precision", "recall", "F1"]
    assert kinds == ["burst", "swarm"]
    assert list(overall) == ["likeguard", "FRAUDAR", "threshold"]
    assert by_kind["threshold"] == [1.0, 0.0]
    assert overall["likeguard"] == pytest.approx([2 / 3, 2 / 3, 2 / 3])


def test_svg_fallback(tmp_path: Path) -> None:
    path = write_chart(make_result(), tmp_path, use_matplotlib=False)
    assert path.name == "report.html"
    page = path.read_text()
    assert page.count("<svg") == 2
    assert "<title>0.667</title>" in page and "swarm" in page


def test_png_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = write_chart(make_result(), tmp_path)
    assert path.name == "report.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_reports(tmp_path: Path) -> None:
    one, two = make_result("seed-1"), make_result("seed-2")
    meta = {"generated_at": "2026-01-01T00:00:00Z", "commit": "abc123", "command": "x"}
    paths = write_reports([one, two], one, meta, tmp_path / "out", use_matplotlib=False)
    assert [p.name for p in paths] == ["report.json", "report.md", "report.html"]
    doc = json.loads(paths[0].read_text())
    assert doc["commit"] == "abc123"
    assert [s["name"] for s in doc["scenarios"]] == ["seed-1", "seed-2"]
    lg = doc["aggregate"]["methods"]["likeguard"]
    assert lg["overall"]["f1"] == pytest.approx(2 / 3)
    assert lg["kinds"]["swarm"]["per_attack"][0]["delay_s"] == 600.0
    assert doc["aggregate"]["detectors"]["burst"]["precision"] == 0.5
    verdicts = {t["name"]: t["verdict"] for t in doc["aggregate"]["targets"]}
    assert verdicts["F1 above FRAUDAR"] == "FAIL"  # FRAUDAR: P 2/3, R 2/3 as well: not above
    md = paths[1].read_text()
    assert "commit: abc123" in md and "## seed-2" in md and "| likeguard | 3 |" in md


def test_a_kind_never_detected_shows_as_missed() -> None:
    result = make_result()
    result.methods["likeguard"] = score_flags({"b1": 10.0}, TRUTH)
    result.targets = check_targets(result.methods["likeguard"], {})
    targets = render_text(result_tables(result)[-1])
    line = next(x for x in targets.splitlines() if x.startswith("median delay swarm"))
    assert line.split()[3:] == ["none", "found", "<", "300", "s", "FAIL"]
