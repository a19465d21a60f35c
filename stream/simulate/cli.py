"""``likeguard simulate``: write a labelled scenario (capture + truth) for tests and evaluation.

The main command line (``stream/cli.py``) calls :func:`configure_parser` and :func:`run`;
``python -m stream.simulate`` runs the same thing on its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from stream.simulate.attacks import ATTACK_KINDS
from stream.simulate.scenario import (
    DEFAULT_START,
    ORGANIC_MODES,
    ScenarioConfig,
    generate,
    summary,
    write,
)

DEFAULT_START_TEXT = "2026-11-01T00:00:00Z"
EXIT_OK = 0
EXIT_BAD_INPUT = 2


def parse_start(text: str) -> float:
    """Parse ``--start``: epoch seconds, or an ISO 8601 time (UTC when no offset is given)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not an epoch or ISO 8601 time: {text!r}") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_attacks(text: str) -> tuple[str, ...]:
    """Parse ``--attacks``: ``all``, ``none``, or a comma-separated list of kinds."""
    cleaned = text.strip().lower()
    if cleaned == "all":
        return ATTACK_KINDS
    if cleaned in ("none", ""):
        return ()
    kinds = tuple(dict.fromkeys(part.strip() for part in cleaned.split(",") if part.strip()))
    unknown = [kind for kind in kinds if kind not in ATTACK_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown attack kind(s) {', '.join(unknown)}; choose from {', '.join(ATTACK_KINDS)}"
        )
    return kinds


def positive_float(text: str) -> float:
    """An argparse type for strictly positive numbers."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` options to ``parser``."""
    parser.add_argument(
        "--out", type=Path, required=True, help="directory for capture.jsonl.gz and truth.json"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--hours", type=positive_float, default=6.0, help="scenario length in hours (default 6)"
    )
    parser.add_argument(
        "--start",
        type=parse_start,
        default=DEFAULT_START,
        help=f"start, ISO 8601 or epoch seconds (default {DEFAULT_START_TEXT})",
    )
    parser.add_argument(
        "--organic",
        choices=ORGANIC_MODES,
        default="wikipedia",
        help="organic background traffic (default wikipedia)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with the organic data files (default $LIKEGUARD_DATA_DIR or ../shared/data)",
    )
    parser.add_argument(
        "--attacks",
        type=parse_attacks,
        default=ATTACK_KINDS,
        help=f"comma-separated kinds ({','.join(ATTACK_KINDS)}), all or none (default all)",
    )
    parser.add_argument(
        "--scale",
        type=positive_float,
        default=1.0,
        help="multiplier of the organic population (default 1)",
    )


def _progress(message: str) -> None:
    print(f"simulate: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Generate the scenario described by ``args``, write it, and return the exit code."""
    try:
        config = ScenarioConfig(
            seed=args.seed,
            hours=args.hours,
            start=args.start,
            organic=args.organic,
            data_dir=args.data_dir,
            attacks=tuple(args.attacks),
            scale=args.scale,
        )
        scenario = generate(config, progress=_progress if args.hours * args.scale > 12 else None)
    except (FileNotFoundError, ValueError) as err:
        print(f"simulate: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    paths = write(scenario, args.out, progress=_progress)
    print(summary(scenario), file=sys.stderr)
    print(f"simulate: wrote {', '.join(str(path) for path in paths)}", file=sys.stderr)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``simulate`` as a stand-alone program."""
    parser = argparse.ArgumentParser(prog="likeguard simulate", description=__doc__)
    configure_parser(parser)
    return run(parser.parse_args(argv))
