"""Rendering an evaluation: plain-text and Markdown tables, ``report.json`` and a chart.

Everything here is a function of :class:`ScenarioResult` objects; nothing touches Redis. The
chart is a PNG drawn with matplotlib (Agg backend) when it is installed (``pip install
likeguard[eval]``), and otherwise an HTML page with the same chart as inline SVG, so a missing
plotting library never fails an evaluation.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream.evaluate.metrics import (
    KIND_DETECTOR,
    DetectorScore,
    MethodScore,
    Target,
)

__all__ = [
    "METHOD_LABELS",
    "ScenarioResult",
    "Table",
    "chart_series",
    "format_seconds",
    "render_markdown",
    "render_text",
    "report_dict",
    "result_tables",
    "svg_grouped_bars",
    "write_chart",
    "write_reports",
]

#: Display names of the methods, in the order they are shown.
METHOD_LABELS: dict[str, str] = {
    "likeguard": "likeguard",
    "fraudar": "FRAUDAR",
    "threshold": "threshold",
}


@dataclass(slots=True)
class ScenarioResult:
    """The scores of one scenario (or of several pooled: ``name == "aggregate"``).

    Attributes
    ----------
    name
        ``seed-101``, a scenario directory's name, or ``aggregate``.
    methods
        Score of each method, keyed like :data:`METHOD_LABELS`.
    detectors
        likeguard's per-detector scores.
    targets
        The targets of issue 3 judged on this result.
    info
        Anything worth keeping about how the result was produced (paths, seed, replay
        summary, Redis namespace), copied into ``report.json``.
    """

    name: str
    methods: dict[str, MethodScore]
    detectors: dict[str, DetectorScore]
    targets: list[Target] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "info": self.info,
            "methods": {name: score.to_dict() for name, score in self.methods.items()},
            "detectors": {name: score.to_dict() for name, score in self.detectors.items()},
            "targets": [target.to_dict() for target in self.targets],
        }


# ---------------------------------------------------------------------------------- tables


@dataclass(frozen=True, slots=True)
class Table:
    """A titled table of already formatted cells; ``align`` has one ``<`` or ``>`` per column."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: str

    def __post_init__(self) -> None:
        if len(self.align) != len(self.headers) or any(
            len(row) != len(self.headers) for row in self.rows
        ):
            raise ValueError(f"table {self.title!r}: every row needs {len(self.headers)} cells")


def render_text(table: Table) -> str:
    """A plain-text table with aligned columns.

    Examples
    --------
    >>> print(render_text(Table("T", ("name", "n"), (("a", "1"), ("bb", "22")), "<>")))
    T
    name   n
    ----  --
    a      1
    bb    22

    """
    widths = [
        max(len(cell) for cell in column) for column in zip(table.headers, *table.rows, strict=True)
    ]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(w) if a == "<" else cell.rjust(w)
            for cell, w, a in zip(cells, widths, table.align, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([table.title, line(table.headers), rule, *(line(r) for r in table.rows)])


def render_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table under a bold title.

    Examples
    --------
    >>> print(render_markdown(Table("T", ("name", "n"), (("a", "1"),), "<>")))
    **T**
    <BLANKLINE>
    | name | n |
    |:-----|--:|
    | a | 1 |

    """
    rule = "|".join(":-----" if a == "<" else "--:" for a in table.align)
    lines = [f"**{table.title}**", "", "| " + " | ".join(table.headers) + " |", f"|{rule}|"]
    lines += [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table.rows
    ]
    return "\n".join(lines)


def format_ratio(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3%}"


def format_seconds(value: float | None) -> str:
    """Seconds for short spans, minutes and hours for long ones; ``-`` when undefined.

    Examples
    --------
    >>> format_seconds(42.4), format_seconds(754.0), format_seconds(9000.0), format_seconds(None)
    ('42 s', '12.6 min', '2.5 h', '-')

    """
    if value is None or math.isnan(value):
        return "-"
    if value < 120:
        return f"{value:.0f} s"
    if value < 2 * 3600:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _delay_cell(score: MethodScore, kind: str) -> str:
    kind_score = score.kinds.get(kind)
    if kind_score is None:
        return "n/a"
    return (
        f"{format_seconds(kind_score.median_delay)} / {format_seconds(kind_score.p90_delay)}"
        f" ({kind_score.detected}/{len(kind_score.attacks)})"
    )


def result_tables(result: ScenarioResult, with_targets: bool = True) -> list[Table]:
    """The tables of one result: attack kinds, detectors, methods overall, targets."""
    methods = [m for m in METHOD_LABELS if m in result.methods]
    likeguard = result.methods["likeguard"]
    labels = tuple(METHOD_LABELS[m] for m in methods)
    recall_rows = []
    delay_rows = []
    for kind, score in likeguard.kinds.items():
        recalls = []
        for method in methods:
            kind_score = result.methods[method].kinds.get(kind)
            recalls.append(format_ratio(kind_score.recall if kind_score else None))
        recall_rows.append(
            (
                kind,
                KIND_DETECTOR.get(kind, "?"),
                str(len(score.attacks)),
                str(score.positives),
                *recalls,
            )
        )
        delay_rows.append((kind, *(_delay_cell(result.methods[m], kind) for m in methods)))
    tables = [
        Table(
            f"Recall per attack kind ({result.name}), from all alerts",
            ("kind", "expected detector", "attacks", "accounts", *labels),
            tuple(recall_rows),
            "<<>>" + ">" * len(methods),
        ),
        Table(
            f"Detection delay per attack kind ({result.name}): event time from attack start "
            "to first flag, median / p90 (attacks found)",
            ("kind", *labels),
            tuple(delay_rows),
            "<" + ">" * len(methods),
        ),
    ]

    detector_rows = tuple(
        (
            name,
            str(score.alerts),
            str(score.confusion.flagged),
            str(score.confusion.tp),
            str(score.confusion.fp),
            str(score.confusion.neutral),
            format_ratio(score.confusion.precision),
            ", ".join(score.own_kinds) or "-",
            format_ratio(score.own_recall),
        )
        for name, score in result.detectors.items()
    )
    tables.append(
        Table(
            f"likeguard detectors ({result.name}): precision of each detector's own alerts",
            (
                "detector",
                "alerts",
                "flagged",
                "TP",
                "FP",
                "beneficiaries",
                "precision",
                "expected kinds",
                "recall on them",
            ),
            detector_rows,
            "<>>>>>><>",
        )
    )

    method_rows = []
    for method in methods:
        method_score = result.methods[method]
        c = method_score.overall
        method_rows.append(
            (
                METHOD_LABELS[method],
                str(c.flagged),
                str(c.tp),
                str(c.fp),
                str(c.fn),
                format_ratio(c.precision),
                format_ratio(c.recall),
                format_ratio(c.f1),
                f"{method_score.organic_flagged}/{method_score.organic_total}",
                format_share(method_score.organic_fp_share),
            )
        )
    tables.append(
        Table(
            f"Overall per-account scores ({result.name})",
            (
                "method",
                "flagged",
                "TP",
                "FP",
                "FN",
                "precision",
                "recall",
                "F1",
                "organic flagged",
                "organic FP share",
            ),
            tuple(method_rows),
            "<>>>>>>>>>",
        )
    )
    if with_targets and result.targets:
        tables.append(
            Table(
                f"Targets of issue 3 ({result.name})",
                ("target", "likeguard", "goal", "verdict"),
                tuple((t.name, _target_value(t), t.goal, t.verdict) for t in result.targets),
                "<><<",
            )
        )
    return tables


def _target_value(target: Target) -> str:
    if target.value is None:
        # A kind present but never detected has no delay: that is a miss, not "not applicable".
        return "none found" if target.passed is False else "n/a"
    if target.name.startswith("median delay"):
        return format_seconds(target.value)
    if target.name.startswith("organic"):
        return format_share(target.value)
    return format_ratio(target.value)


# ---------------------------------------------------------------------------------- charts


def chart_series(
    result: ScenarioResult,
) -> tuple[list[str], list[str], dict[str, list[float | None]], dict[str, list[float | None]]]:
    """The numbers the chart shows.

    Returns
    -------
    overall_groups, kind_groups, overall, by_kind
        Group labels of the two panels and, per method label, one value per group:
        precision, recall and F1 overall; recall per attack kind.
    """
    overall_groups = ["precision", "recall", "F1"]
    kinds = list(result.methods["likeguard"].kinds)
    overall: dict[str, list[float | None]] = {}
    by_kind: dict[str, list[float | None]] = {}
    for method, label in METHOD_LABELS.items():
        score = result.methods.get(method)
        if score is None:
            continue
        c = score.overall
        overall[label] = [c.precision, c.recall, c.f1]
        by_kind[label] = [score.kinds[k].recall if k in score.kinds else None for k in kinds]
    return overall_groups, kinds, overall, by_kind


_COLOURS = ("#1f77b4", "#ff7f0e", "#7f7f7f", "#2ca02c", "#d62728")


def write_chart(result: ScenarioResult, out_dir: Path, use_matplotlib: bool | None = None) -> Path:
    """Draw grouped bars (overall P/R/F1 and recall per kind, one bar per method).

    Writes ``report.png`` with matplotlib, or ``report.html`` (inline SVG) when matplotlib is
    not installed or ``use_matplotlib`` is ``False``. Returns the path written.
    """
    if use_matplotlib is not False:
        try:
            import matplotlib

            matplotlib.use("Agg")  # no display needed; must precede pyplot
            import matplotlib.pyplot as plt
        except ImportError:
            if use_matplotlib:
                raise
        else:
            return _png_chart(result, out_dir / "report.png", plt)
    path = out_dir / "report.html"
    overall_groups, kinds, overall, by_kind = chart_series(result)
    title = f"likeguard evaluation: {result.name}"
    body = "\n".join(
        [
            svg_grouped_bars("Overall per-account scores", overall_groups, overall),
            svg_grouped_bars("Recall per attack kind", kinds, by_kind),
        ]
    )
    path.write_text(
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n",
        encoding="utf-8",
    )
    return path


def _png_chart(result: ScenarioResult, path: Path, plt: Any) -> Path:
    overall_groups, kinds, overall, by_kind = chart_series(result)
    fig, axes = plt.subplots(
        1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, max(len(kinds), 1) / 2]}
    )
    for ax, title, groups, series in (
        (axes[0], "Overall per-account scores", overall_groups, overall),
        (axes[1], "Recall per attack kind", kinds, by_kind),
    ):
        width = 0.8 / max(len(series), 1)
        for i, (label, values) in enumerate(series.items()):
            xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
            heights = [0.0 if v is None else v for v in values]
            bars = ax.bar(xs, heights, width, label=label, color=_COLOURS[i % len(_COLOURS)])
            ax.bar_label(bars, labels=[format_ratio(v, 2) for v in values], fontsize=7, padding=1)
        ax.set_xticks(range(len(groups)), groups, rotation=20 if len(groups) > 3 else 0)
        ax.set_ylim(0, 1.1)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].axhline(0.9, color="k", linestyle="--", linewidth=1, label="F1 target 0.9")
    axes[1].axhline(0.8, color="k", linestyle=":", linewidth=1, label="recall target 0.8")
    handles, names = axes[0].get_legend_handles_labels()
    more, more_names = axes[1].get_legend_handles_labels()
    keep = [(h, n) for h, n in zip(more, more_names, strict=True) if n not in names]
    fig.legend(
        [*handles, *(h for h, _ in keep)],
        [*names, *(n for _, n in keep)],
        loc="lower center",
        ncol=len(names) + len(keep),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(f"likeguard evaluation: {result.name}")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def svg_grouped_bars(
    title: str,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    width: int = 640,
    height: int = 300,
) -> str:
    """An inline SVG of grouped bars for values in [0, 1]; ``None`` draws no bar.

    Examples
    --------
    >>> svg = svg_grouped_bars("t", ["F1"], {"a": [0.5], "b": [None]})
    >>> svg.startswith("<svg") and svg.count("<rect") == 1 + 2  # one bar + two legend keys
    True

    """
    left, right, top, bottom = 40, 10, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    n_series = max(len(series), 1)
    group_w = plot_w / max(len(groups), 1)
    bar_w = group_w * 0.8 / n_series
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="14">'
        f"{html.escape(title)}</text>",
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>'
        )
    for g, group in enumerate(groups):
        x0 = left + g * group_w + group_w * 0.1
        for s, values in enumerate(series.values()):
            value = values[g]
            if value is None:
                continue
            h = plot_h * max(0.0, min(value, 1.0))
            x = x0 + s * bar_w
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{_COLOURS[s % len(_COLOURS)]}">'
                f"<title>{value:.3f}</title></rect>"
            )
        parts.append(
            f'<text x="{left + (g + 0.5) * group_w:.1f}" y="{top + plot_h + 14}" '
            f'text-anchor="middle">{html.escape(group)}</text>'
        )
    for s, label in enumerate(series):
        x = left + s * 110
        y = height - 16
        parts.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" '
            f'fill="{_COLOURS[s % len(_COLOURS)]}"/>'
            f'<text x="{x + 14}" y="{y}">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


# --------------------------------------------------------------------------------- reports


def report_dict(
    scenarios: Sequence[ScenarioResult], aggregate: ScenarioResult, meta: Mapping[str, Any]
) -> dict[str, Any]:
    """Everything measured, for ``report.json``."""
    return {
        **meta,
        "scenarios": [s.to_dict() for s in scenarios],
        "aggregate": aggregate.to_dict(),
    }


def render_report_markdown(
    scenarios: Sequence[ScenarioResult], aggregate: ScenarioResult, meta: Mapping[str, Any]
) -> str:
    """``report.md``: how it was made, the aggregate with targets, then each scenario."""
    lines = [
        "# likeguard evaluation",
        "",
        f"- generated: {meta.get('generated_at', '?')}",
        f"- commit: {meta.get('commit', '?')}",
        f"- command: `{meta.get('command', '?')}`",
        f"- scenarios: {', '.join(s.name for s in scenarios)}",
        "",
        "Counts are pooled over the scenarios (micro-average). Beneficiaries (authors who "
        "bought engagement) are neither true nor false positives.",
        "",
        f"## Aggregate over {len(scenarios)} scenario(s)",
        "",
    ]
    for table in result_tables(aggregate):
        lines += [render_markdown(table), ""]
    if len(scenarios) > 1:
        for scenario in scenarios:
            lines += [f"## {scenario.name}", ""]
            for table in result_tables(scenario):
                lines += [render_markdown(table), ""]
    return "\n".join(lines)


def write_reports(
    scenarios: Sequence[ScenarioResult],
    aggregate: ScenarioResult,
    meta: Mapping[str, Any],
    out_dir: Path,
    use_matplotlib: bool | None = None,
) -> list[Path]:
    """Write ``report.json``, ``report.md`` and the chart into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report_json = out_dir / "report.json"
    report_json.write_text(
        json.dumps(report_dict(scenarios, aggregate, meta), indent=2) + "\n", encoding="utf-8"
    )
    report_md = out_dir / "report.md"
    report_md.write_text(render_report_markdown(scenarios, aggregate, meta), encoding="utf-8")
    chart = write_chart(aggregate, out_dir, use_matplotlib)
    return [report_json, report_md, chart]
