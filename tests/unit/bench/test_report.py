"""Rows, verdicts and the printed table."""

from __future__ import annotations

import pytest

from bench.report import (
    FAIL,
    INFO,
    NOT_MEASURED,
    PASS,
    Row,
    Target,
    format_machine,
    format_number,
    format_table,
    markdown_table,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (0, "0"),
        (0.000123, "1.23e-04"),
        (0.8123, "0.812"),
        (1.5, "1.5"),
        (12.04, "12.0"),
        (99.96, "100.0"),
        (1234.5, "1,234"),
        (52341.7, "52,342"),
        (-2500.0, "-2,500"),
    ],
)
def test_format_number(value: float | None, text: str) -> None:
    assert format_number(value) == text


def test_target_bounds_are_inclusive_only_for_at_least() -> None:
    at_least = Target(0.8, at_least=True)
    assert at_least.met(0.8)
    assert not at_least.met(0.7999)
    below = Target(1.0, at_least=False)
    assert below.met(0.999)
    assert not below.met(1.0)
    assert at_least.text() == ">= 0.8"
    assert below.text("s") == "< 1 s"


def test_verdicts() -> None:
    assert Row("x", None, target=Target(1, True)).verdict == NOT_MEASURED
    assert Row("x", 5.0).verdict == INFO
    assert Row("x", 5.0, target=Target(1, True)).verdict == PASS
    assert Row("x", 0.5, target=Target(1, True)).verdict == FAIL


def test_row_as_dict_carries_the_verdict_and_target() -> None:
    row = Row("replay", 60000.0, "events/s", Target(50000, True), "note")
    out = row.as_dict()
    assert out["verdict"] == PASS
    assert out["target"] == {"bound": 50000, "at_least": True}
    assert out["value"] == 60000.0


ROWS = [
    Row("live: worker / bare", 0.73, "", Target(0.8, True), "all detectors"),
    Row("replay", 52341.7, "events/s", Target(50000, True)),
    Row("memory per account", None, "B"),
]


def test_format_table_has_a_line_per_row_with_value_target_and_verdict() -> None:
    lines = format_table(ROWS).splitlines()
    assert len(lines) == 2 + len(ROWS)
    assert lines[0].split()[:2] == ["figure", "value"]
    assert set(lines[1]) <= {"-", " "}
    assert "0.73" in lines[2] and ">= 0.8" in lines[2] and FAIL in lines[2]
    assert "52,342 events/s" in lines[3] and PASS in lines[3]
    assert NOT_MEASURED in lines[4] and "- B" not in lines[4]


def test_format_table_right_aligns_values() -> None:
    lines = format_table(ROWS).splitlines()
    value_ends = {
        line.index(value) + len(value)
        for line, value in zip(lines[2:], ["0.73", "52,342 events/s", "-"], strict=True)
    }
    assert len(value_ends) == 1, "values end in the same column"


def test_markdown_table() -> None:
    lines = markdown_table(ROWS).splitlines()
    assert lines[0].startswith("| figure | value | target | verdict |")
    assert len(lines) == 2 + len(ROWS)
    assert "| 52,342 events/s | >= 50,000 events/s | PASS |" in lines[3]


def test_format_machine_aligns_keys() -> None:
    text = format_machine({"nproc": 2, "python": "3.11.7"})
    assert text.splitlines() == ["nproc   2", "python  3.11.7"]
