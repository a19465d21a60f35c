"""The eval command's argument handling and pure helpers (no Redis)."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import pytest

from stream.evaluate import cli
from stream.evaluate.metrics import Confusion, KindScore, MethodScore
from stream.evaluate.report import ScenarioResult


def parse(*argv: str, parents: list[argparse.ArgumentParser] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(parents=parents or [])
    cli.configure_parser(parser)
    return parser.parse_args(argv)


def test_seeds_accumulate_from_both_spellings() -> None:
    args = parse("--simulate-seed", "101", "--simulate-seed", "102", "--seeds", "103", "104")
    assert args.simulate_seeds == [101, 102, 103, 104]
    assert args.scenarios == [] and args.hours == 6.0 and not args.check


def test_scenario_dirs_and_names(tmp_path: Path) -> None:
    a, b = tmp_path / "x" / "scen", tmp_path / "y" / "scen"
    args = parse(str(a), str(b), "--seeds", "7", "7", "--hours", "1", "--check")
    names = [s.name for s in cli._sources(args)]
    assert names == ["scen", "scen-2", "seed-7"]  # duplicates made unique, repeated seed once
    assert args.hours == 1.0 and args.check


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit):
        parse("--simulate-seed", "abc")
    with pytest.raises(SystemExit):
        parse("--seeds", "1", "--hours", "0")
    with pytest.raises(SystemExit):
        parse("--seeds", "1", "--attacks", "nonsense")


def test_connection_flags_from_a_parent_parser_do_not_clash() -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--redis-url")
    common.add_argument("--config")
    args = parse("--redis-url", "redis://h:1/0", parents=[common])
    assert args.redis_url == "redis://h:1/0"
    assert parse("--redis-url", "redis://x/0").redis_url == "redis://x/0"


def test_run_needs_a_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse()) == cli.EXIT_BAD_INPUT
    assert "SCENARIO_DIR" in capsys.readouterr().err


def test_run_refuses_incomplete_scenario_dirs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.run(parse(str(empty), "--out", str(tmp_path / "r"))) == cli.EXIT_BAD_INPUT
    assert "capture.jsonl.gz" in capsys.readouterr().err
    (empty / "capture.jsonl").write_text("")
    assert cli.run(parse(str(empty), "--out", str(tmp_path / "r"))) == cli.EXIT_BAD_INPUT
    assert "truth.json" in capsys.readouterr().err


def test_like_events_read_only_valid_likes(tmp_path: Path) -> None:
    lines = [
        {"event_id": "a1", "type": "account", "account_id": "u1", "ts": 1.8e9, "created_at": 1.7e9},
        {
            "event_id": "l1",
            "type": "like",
            "actor_id": "u1",
            "post_id": "p1",
            "author_id": "v",
            "ts": 1.8e9 + 2,
        },
        {
            "event_id": "l2",
            "type": "unlike",
            "actor_id": "u1",
            "post_id": "p1",
            "author_id": "v",
            "ts": "2027-01-15T08:00:03Z",
        },
    ]
    path = tmp_path / "capture.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")
        handle.write("not json\n")
    assert cli.find_capture(tmp_path) == path
    assert cli.like_events(path) == [
        {"event_id": "l1", "type": "like", "actor_id": "u1", "post_id": "p1", "ts": 1.8e9 + 2},
        {"event_id": "l2", "type": "unlike", "actor_id": "u1", "post_id": "p1", "ts": 1800000003.0},
    ]


def _result(name: str, tp: int, fp: int, fn: int, delay: float) -> ScenarioResult:
    from stream.evaluate.metrics import AttackDelay

    kinds = {"burst": KindScore(tp + fn, tp, [AttackDelay("burst", "b", 0.0, delay)])}
    score = MethodScore(Confusion(tp=tp, fp=fp, fn=fn), kinds, fp, 1000)
    methods = {"likeguard": score, "fraudar": score, "threshold": score}
    return ScenarioResult(name, methods, {})


def test_aggregate_pools_scenarios() -> None:
    agg = cli.aggregate_results([_result("a", 9, 1, 1, 10.0), _result("b", 1, 0, 9, 500.0)])
    lg = agg.methods["likeguard"]
    assert (lg.overall.tp, lg.overall.fp, lg.overall.fn) == (10, 1, 10)
    assert lg.kinds["burst"].median_delay == 255.0
    assert lg.organic_total == 2000
    verdicts = {t.name: t.verdict for t in agg.targets}
    assert verdicts["recall burst"] == "FAIL"  # 10 of 20
    assert verdicts["median delay burst"] == "PASS"
    assert agg.info == {"scenarios": ["a", "b"]}


def test_aggregate_of_one_is_that_scenario() -> None:
    only = _result("a", 9, 1, 1, 10.0)
    agg = cli.aggregate_results([only])
    assert agg.methods is only.methods and agg.name == "aggregate"


def test_simulation_without_data_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse("--seeds", "5", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path))
    assert cli.run(args) == cli.EXIT_BAD_INPUT
    assert "cannot simulate seed 5" in capsys.readouterr().err
