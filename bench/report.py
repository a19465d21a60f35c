"""The benchmark's results: one row per figure with its target, and the printed table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

PASS = "PASS"
FAIL = "FAIL"
INFO = "info"
NOT_MEASURED = "n/a"


@dataclass(frozen=True, slots=True)
class Target:
    """A bound a figure must meet: ``value >= bound`` (``at_least``) or ``value < bound``."""

    bound: float
    at_least: bool

    def met(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value < self.bound

    def text(self, unit: str = "") -> str:
        sign = ">=" if self.at_least else "<"
        return f"{sign} {format_number(self.bound)}{(' ' + unit) if unit else ''}"


@dataclass(frozen=True, slots=True)
class Row:
    """One figure of the table."""

    name: str
    value: float | None
    unit: str = ""
    target: Target | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.value is None:
            return NOT_MEASURED
        if self.target is None:
            return INFO
        return PASS if self.target.met(self.value) else FAIL

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["target"] = None if self.target is None else asdict(self.target)
        out["verdict"] = self.verdict
        return out


def format_number(value: float | None) -> str:
    """Human-sized numbers: thousands separators, three significant digits below 100.

    >>> format_number(52341.7), format_number(0.8123), format_number(12.0), format_number(None)
    ('52,342', '0.812', '12.0', '-')
    """
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if value == 0:
        return "0"
    return f"{value:.3g}" if abs(value) >= 0.001 else f"{value:.2e}"


def format_table(rows: Sequence[Row]) -> str:
    """A fixed-width text table: figure, value, unit, target, verdict, note."""
    header = ("figure", "value", "target", "verdict", "note")
    cells = [
        (
            r.name,
            format_number(r.value) + (f" {r.unit}" if r.unit and r.value is not None else ""),
            r.target.text(r.unit) if r.target else "-",
            r.verdict,
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    aligned_right = {1}

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(widths[i]) if i in aligned_right else v.ljust(widths[i])
            for i, v in enumerate(values)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(c) for c in cells)])


def markdown_table(rows: Sequence[Row]) -> str:
    """The same table as Markdown, for BENCHMARKS.md."""
    out = ["| figure | value | target | verdict | note |", "|---|---:|---|---|---|"]
    for r in rows:
        value = format_number(r.value) + (f" {r.unit}" if r.unit and r.value is not None else "")
        target = r.target.text(r.unit) if r.target else "-"
        out.append(f"| {r.name} | {value} | {target} | {r.verdict} | {r.note} |")
    return "\n".join(out)


def format_machine(machine: Mapping[str, Any]) -> str:
    """One ``key: value`` line per machine fact, in insertion order."""
    width = max((len(k) for k in machine), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in machine.items())
