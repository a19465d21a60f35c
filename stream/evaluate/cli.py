"""``likeguard eval``: replay labelled scenarios through the real pipeline and score the alerts.

    likeguard eval SCENARIO_DIR... [--out REPORT_DIR] [--check]
    likeguard eval --simulate-seed 101 --simulate-seed 102 [--hours H] [--out REPORT_DIR]

A scenario directory holds ``capture.jsonl.gz`` and ``truth.json`` as written by ``likeguard
simulate``; ``--simulate-seed N`` (repeatable; ``--seeds N N …`` is the same) first generates one
into a temporary directory. Each scenario is replayed with :func:`stream.replay.replay` through a
:class:`detectors.pipeline.Pipeline` on a fresh Redis namespace (deleted afterwards), the two
reference methods run on the same capture, and everything is scored per scenario and pooled
(see :mod:`stream.evaluate.metrics` for the definitions). Tables go to standard output,
progress to standard error, and ``report.json``, ``report.md`` and a chart to REPORT_DIR.

The main command line (``stream/cli.py``) calls :func:`configure_parser` and :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from stream.evaluate.metrics import (
    MethodScore,
    Truth,
    check_targets,
    flags_from_alerts,
    merge_detector_scores,
    merge_scores,
    score_detectors,
    score_flags,
    union_flags,
)
from stream.evaluate.report import (
    ScenarioResult,
    render_text,
    result_tables,
    write_reports,
)

EXIT_OK = 0
EXIT_TARGETS_FAILED = 1
EXIT_BAD_INPUT = 2

CAPTURE_NAMES = ("capture.jsonl.gz", "capture.jsonl")
TRUTH_NAME = "truth.json"
DEFAULT_OUT = Path("likeguard-eval")


class ScenarioError(RuntimeError):
    """A scenario could not be simulated."""


@dataclass(frozen=True, slots=True)
class ScenarioSource:
    """Where a scenario comes from: a directory on disk or a seed to simulate."""

    name: str
    directory: Path | None = None
    seed: int | None = None


# ---------------------------------------------------------------------------------- parser


def _has_option(parser: argparse.ArgumentParser, option: str) -> bool:
    # The main command line may already give every sub-command its connection flags.
    return any(option in action.option_strings for action in parser._actions)


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer seed: {text!r}") from None


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``eval`` arguments to ``parser``."""
    from stream.simulate.cli import parse_attacks, positive_float

    parser.add_argument(
        "scenarios",
        nargs="*",
        type=Path,
        metavar="SCENARIO_DIR",
        help="directories with capture.jsonl.gz and truth.json (from likeguard simulate)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="REPORT_DIR",
        help=f"where report.json, report.md, the chart and the alerts go (default {DEFAULT_OUT})",
    )
    seeds = parser.add_argument_group("simulated scenarios")
    seeds.add_argument(
        "--simulate-seed",
        dest="simulate_seeds",
        action="append",
        type=_seed,
        metavar="N",
        help="simulate a scenario with seed N first and evaluate it (repeatable)",
    )
    seeds.add_argument(
        "--seeds",
        dest="simulate_seeds",
        action="extend",
        nargs="+",
        type=_seed,
        metavar="N",
        help="several --simulate-seed at once",
    )
    seeds.add_argument(
        "--hours", type=positive_float, default=6.0, help="simulated scenario length (default 6)"
    )
    seeds.add_argument(
        "--attacks",
        type=parse_attacks,
        default=None,
        help="attack kinds of simulated scenarios, comma-separated (default all)",
    )
    seeds.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="organic data files for simulation (default $LIKEGUARD_DATA_DIR or ../shared/data)",
    )
    seeds.add_argument(
        "--keep-scenarios",
        action="store_true",
        help="keep simulated scenarios in REPORT_DIR/scenarios/ instead of a temporary directory",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when any target of issue 3 fails"
    )
    parser.add_argument("--batch-size", type=int, default=1000, help="replay batch size")
    parser.add_argument("--no-progress", action="store_true", help="no replay progress display")
    refs = parser.add_argument_group("reference methods")
    refs.add_argument(
        "--fraudar-blocks", type=int, default=3, help="dense blocks FRAUDAR looks for (default 3)"
    )
    refs.add_argument(
        "--threshold-likes",
        type=int,
        default=30,
        help="likes per window that trip the fixed-threshold rule (default 30)",
    )
    refs.add_argument(
        "--threshold-window",
        type=positive_float,
        default=600.0,
        help="window of the fixed-threshold rule in seconds (default 600)",
    )
    if not _has_option(parser, "--redis-url"):
        parser.add_argument("--redis-url", help="Redis URL [LIKEGUARD_REDIS_URL]")
    if not _has_option(parser, "--config"):
        parser.add_argument(
            "--config", help="detection settings TOML overriding detectors/defaults.toml"
        )


# ------------------------------------------------------------------------------------- run


def _say(message: str) -> None:
    print(f"eval: {message}", file=sys.stderr, flush=True)


def _sources(args: argparse.Namespace) -> list[ScenarioSource]:
    sources: list[ScenarioSource] = []
    taken: set[str] = set()
    for directory in args.scenarios:
        name = directory.resolve().name or "scenario"
        unique, n = name, 2
        while unique in taken:
            unique, n = f"{name}-{n}", n + 1
        taken.add(unique)
        sources.append(ScenarioSource(unique, directory=directory))
    for seed in dict.fromkeys(args.simulate_seeds or ()):
        sources.append(ScenarioSource(f"seed-{seed}", seed=seed))
        taken.add(f"seed-{seed}")
    return sources


def find_capture(directory: Path) -> Path:
    """The capture file of a scenario directory."""
    for name in CAPTURE_NAMES:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory}: no {' or '.join(CAPTURE_NAMES)}")


def run(args: argparse.Namespace) -> int:
    """Evaluate every scenario ``args`` names; print tables, write reports, judge targets."""
    from detectors.config import ConfigError, load_config
    from detectors.state import StateError
    from stream.config import Settings

    sources = _sources(args)
    if not sources:
        print("likeguard eval: give SCENARIO_DIR(s) or --simulate-seed N", file=sys.stderr)
        return EXIT_BAD_INPUT
    for source in sources:
        if source.directory is None:
            continue
        try:
            find_capture(source.directory)
        except FileNotFoundError as err:
            print(f"likeguard eval: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if not (source.directory / TRUTH_NAME).is_file():
            print(f"likeguard eval: {source.directory}: no {TRUTH_NAME}", file=sys.stderr)
            return EXIT_BAD_INPUT

    settings = Settings.from_env(
        redis_url=getattr(args, "redis_url", None), config=getattr(args, "config", None)
    )
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        config = load_config(settings.config or None)
        results = []
        with _scenario_dirs(args, out_dir) as scratch:
            for number, source in enumerate(sources, start=1):
                _say(f"[{number}/{len(sources)}] {source.name}")
                info: dict[str, Any] = {}
                if source.seed is not None:
                    info = {"seed": source.seed, "hours": args.hours, "kept": args.keep_scenarios}
                directory = source.directory or _simulate(source, args, scratch)
                results.append(
                    evaluate_scenario(
                        source.name, directory, settings.redis_url, config, out_dir, args, info
                    )
                )
    except (ConfigError, StateError, ScenarioError) as err:
        print(f"likeguard eval: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT

    aggregate = aggregate_results(results)
    meta = _meta(args, sources)
    print_results(results, aggregate, sys.stdout)
    paths = write_reports(results, aggregate, meta, out_dir)
    _say("wrote " + ", ".join(str(p) for p in paths))
    failed = [t.name for t in aggregate.targets if t.passed is False]
    if args.check and failed:
        _say(f"{len(failed)} target(s) failed: {', '.join(failed)}")
        return EXIT_TARGETS_FAILED
    return EXIT_OK


class _scenario_dirs:
    """A place for simulated scenarios: kept under REPORT_DIR, or a temporary directory."""

    def __init__(self, args: argparse.Namespace, out_dir: Path) -> None:
        self._keep = out_dir / "scenarios" if args.keep_scenarios else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Path:
        if self._keep is not None:
            self._keep.mkdir(parents=True, exist_ok=True)
            return self._keep
        self._tmp = tempfile.TemporaryDirectory(prefix="likeguard-eval-")
        return Path(self._tmp.name)

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _simulate(source: ScenarioSource, args: argparse.Namespace, scratch: Path) -> Path:
    from stream.simulate.attacks import ATTACK_KINDS
    from stream.simulate.scenario import ScenarioConfig, generate, summary, write

    assert source.seed is not None
    directory = scratch / source.name
    _say(f"simulating seed {source.seed}, {args.hours:g} h")
    try:
        scenario = generate(
            ScenarioConfig(
                seed=source.seed,
                hours=args.hours,
                attacks=tuple(args.attacks) if args.attacks is not None else ATTACK_KINDS,
                data_dir=args.data_dir,
            ),
            progress=lambda message: _say(f"simulate: {message}"),
        )
    except (FileNotFoundError, ValueError) as err:
        raise ScenarioError(f"cannot simulate seed {source.seed}: {err}") from None
    write(scenario, directory)
    for line in summary(scenario).splitlines():
        _say(line)
    return directory


# ------------------------------------------------------------------------------- one scenario


def evaluate_scenario(
    name: str,
    directory: Path,
    redis_url: str,
    config: Any,
    out_dir: Path,
    args: argparse.Namespace,
    info: dict[str, Any] | None = None,
) -> ScenarioResult:
    """Replay one scenario, run the references, and score all three against its truth."""
    capture = find_capture(directory)
    truth = Truth.from_json(json.loads((directory / TRUTH_NAME).read_text(encoding="utf-8")))
    alerts_path = out_dir / f"{name}.alerts.jsonl"
    info = {
        **(info or {}),
        "scenario_dir": str(directory),
        "capture": str(capture),
        "alerts_file": str(alerts_path),
    }
    info["replay"] = replay_capture(capture, alerts_path, redis_url, config, args)

    alerts = list(read_alerts(alerts_path))
    by_detector = flags_from_alerts(alerts)
    alert_counts: dict[str, int] = {}
    for alert in alerts:
        alert_counts[alert["detector"]] = alert_counts.get(alert["detector"], 0) + 1
    methods: dict[str, MethodScore] = {"likeguard": score_flags(union_flags(by_detector), truth)}

    _say("reference methods: reading the capture")
    events = like_events(capture)
    started = time.monotonic()
    from detectors.reference import run_fraudar, run_threshold

    fraudar = run_fraudar(events, k=args.fraudar_blocks)
    _say(
        f"reference methods: FRAUDAR {len(fraudar.flagged):,} flagged "
        f"({time.monotonic() - started:.1f} s)"
    )
    threshold = run_threshold(events, window=args.threshold_window, threshold=args.threshold_likes)
    _say(f"reference methods: threshold {len(threshold.flagged):,} flagged")
    methods["fraudar"] = score_flags(fraudar.first_detection, truth)
    methods["threshold"] = score_flags(threshold.first_detection, truth)
    info["references"] = {
        "fraudar": {"k": args.fraudar_blocks, "blocks": _blocks(fraudar)},
        "threshold": {"likes": args.threshold_likes, "window_s": args.threshold_window},
    }
    detectors = score_detectors(by_detector, truth, alert_counts)
    result = ScenarioResult(name, methods, detectors, info=info)
    result.targets = check_targets(
        methods["likeguard"], {"FRAUDAR": methods["fraudar"], "threshold": methods["threshold"]}
    )
    return result


def _blocks(result: Any) -> list[dict[str, Any]]:
    return [
        {
            "accounts": len(b.accounts),
            "posts": len(b.posts),
            "edges": b.n_edges,
            "ratio": round(b.ratio, 3),
            "flagged": b.flagged,
        }
        for b in result.blocks
    ]


def replay_capture(
    capture: Path, alerts_path: Path, redis_url: str, config: Any, args: argparse.Namespace
) -> dict[str, Any]:
    """Run the capture through a fresh pipeline on its own namespace; alerts to ``alerts_path``.

    The namespace is deleted afterwards, whatever happens.
    """
    from detectors.pipeline import Pipeline
    from detectors.state import RedisState
    from stream.replay import Progress, RejectsFile, replay

    namespace = f"likeguard-eval-{uuid.uuid4().hex[:12]}"
    state = RedisState.from_url(redis_url, namespace)
    rejects = RejectsFile(alerts_path.with_name(alerts_path.stem + ".rejects.jsonl"))
    progress = Progress(sys.stderr, enabled=False if args.no_progress else None)
    _say(f"replaying {capture} on Redis namespace {namespace}")
    try:
        pipeline = Pipeline(state, config)
        with alerts_path.open("w", encoding="utf-8") as out:
            summary = replay(
                [capture], pipeline, out, rejects, batch_size=args.batch_size, progress=progress
            )
    finally:
        state.delete_namespace()
    for line in summary.lines():
        _say(line.strip())
    return {
        "redis_namespace": namespace,
        "detectors": [d.name for d in pipeline.detectors],
        "events": summary.events,
        "seconds": round(summary.seconds, 3),
        "alerts": dict(sorted(summary.alerts.items())),
        "rejects": sum(summary.rejects.values()),
    }


def read_alerts(path: Path) -> Iterator[dict[str, Any]]:
    """Alert dicts from a JSON Lines file."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def like_events(capture: Path) -> list[dict[str, Any]]:
    """The capture's valid likes and unlikes as the plain dicts the reference methods take."""
    from schemas.records import LikeEvent
    from stream.capture import Placed, read_capture

    return [
        {
            "event_id": item.event.event_id,
            "type": item.event.type,
            "actor_id": item.event.actor_id,
            "post_id": item.event.post_id,
            "ts": item.event.ts,
        }
        for item in read_capture(capture)
        if isinstance(item, Placed) and isinstance(item.event, LikeEvent)
    ]


# ------------------------------------------------------------------------------- aggregate


def aggregate_results(results: Sequence[ScenarioResult]) -> ScenarioResult:
    """Pool every scenario (micro-average) and judge the targets on the pool."""
    if len(results) == 1:
        only = results[0]
        return ScenarioResult(
            "aggregate", only.methods, only.detectors, only.targets, {"scenarios": [only.name]}
        )
    methods = {
        name: merge_scores([r.methods[name] for r in results]) for name in results[0].methods
    }
    detectors = merge_detector_scores([r.detectors for r in results])
    targets = check_targets(
        methods["likeguard"], {"FRAUDAR": methods["fraudar"], "threshold": methods["threshold"]}
    )
    return ScenarioResult(
        "aggregate", methods, detectors, targets, {"scenarios": [r.name for r in results]}
    )


def print_results(
    results: Sequence[ScenarioResult], aggregate: ScenarioResult, stream: TextIO
) -> None:
    """Each scenario's tables (when there are several), then the aggregate with the targets."""
    if len(results) > 1:
        for result in results:
            for table in result_tables(result, with_targets=False):
                print(render_text(table) + "\n", file=stream)
    title = f"=== aggregate over {len(results)} scenario(s): {', '.join(r.name for r in results)}"
    print(title + "\n", file=stream)
    for table in result_tables(aggregate):
        print(render_text(table) + "\n", file=stream)
    stream.flush()


def _meta(args: argparse.Namespace, sources: Sequence[ScenarioSource]) -> dict[str, Any]:
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "likeguard"
    argv = ["likeguard", *sys.argv[1:]] if program == "likeguard" else list(sys.argv)
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "commit": _commit(),
        "command": shlex.join(argv),
        "scenarios_evaluated": [s.name for s in sources],
        "definitions": "see stream/evaluate/metrics.py; counts pooled over scenarios",
    }


def _commit() -> str:
    """The checked-out commit of this source tree, ``+dirty`` when detection code differs."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", "detectors", "stream"],
            capture_output=True,
            timeout=10,
        ).returncode
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``eval`` as a stand-alone program (``python -m stream.evaluate``)."""
    parser = argparse.ArgumentParser(
        prog="likeguard eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_parser(parser)
    return run(parser.parse_args(argv))
