"""The ``simulate`` command line: options, errors and the summary."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from stream.simulate.attacks import ATTACK_KINDS
from stream.simulate.checks import LoadedScenario
from stream.simulate.cli import configure_parser, parse_attacks, parse_start, run
from stream.simulate.scenario import DEFAULT_START

Simulate = Callable[..., LoadedScenario]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    return parser.parse_args(list(argv))


def test_defaults_match_the_documented_scenario(tmp_path: Path) -> None:
    args = parse("--out", str(tmp_path))
    assert args.hours == 6.0
    assert args.start == DEFAULT_START == 1793491200.0
    assert args.organic == "wikipedia"
    assert args.attacks == ATTACK_KINDS
    assert args.scale == 1.0
    assert args.data_dir is None


def test_start_accepts_iso_and_epoch() -> None:
    assert parse_start("2026-11-01T00:00:00Z") == 1793491200.0
    assert parse_start("2026-11-01T01:00:00+01:00") == 1793491200.0
    assert parse_start("2026-11-01T00:00:00") == 1793491200.0
    assert parse_start("1793491200.5") == 1793491200.5
    with pytest.raises(argparse.ArgumentTypeError):
        parse_start("yesterday")


def test_attacks_accept_lists_all_and_none() -> None:
    assert parse_attacks("all") == ATTACK_KINDS
    assert parse_attacks("none") == ()
    assert parse_attacks("swarm, churn,swarm") == ("swarm", "churn")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_attacks("burst,sybil")


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    for argv in (["--hours", "0"], ["--scale", "-1"], ["--organic", "reddit"], []):
        with pytest.raises(SystemExit):
            parse(*(["--out", str(tmp_path)] if argv else []), *argv)


def test_missing_data_file_exits_2_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse("--out", str(tmp_path / "out"), "--data-dir", str(tmp_path), "--hours", "0.5")
    assert run(args) == 2
    assert "--organic synthetic" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_only_the_requested_attack_kinds_are_injected(run_simulate: Simulate) -> None:
    scenario = run_simulate("--organic", "synthetic", "--hours", "0.5", "--attacks", "churn,ring")
    assert {attack["kind"] for attack in scenario.truth["attacks"]} == {"churn", "ring"}


def test_scale_multiplies_organic_volume(run_simulate: Simulate) -> None:
    small = run_simulate("--organic", "synthetic", "--hours", "0.5", "--attacks", "none")
    large = run_simulate(
        "--organic", "synthetic", "--hours", "0.5", "--attacks", "none", "--scale", "2"
    )
    ratio = large.truth["counts"]["like"] / small.truth["counts"]["like"]
    assert 1.6 < ratio < 2.4


def test_summary_names_events_accounts_and_attacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse("--out", str(tmp_path), "--organic", "synthetic", "--hours", "0.5")
    assert run(args) == 0
    err = capsys.readouterr().err
    assert "events" in err and "accounts" in err
    for kind in ATTACK_KINDS:
        assert kind in err
