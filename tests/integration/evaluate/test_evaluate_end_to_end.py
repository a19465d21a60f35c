"""``likeguard eval`` end to end: simulate a short scenario, replay it on real Redis, score it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import redis

from stream.evaluate import cli

pytestmark = pytest.mark.integration

SEED = 4242  # any seed: the test checks consistency, not detection quality beyond burst > 0


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure_parser(parser)
    return parser.parse_args(argv)


def test_eval_on_a_one_hour_scenario(
    tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    args = parse(
        "--simulate-seed",
        str(SEED),
        "--hours",
        "1",
        "--out",
        str(out),
        "--keep-scenarios",
        "--no-progress",
        "--redis-url",
        redis_url,
        "--check",
    )
    code = cli.run(args)
    printed = capsys.readouterr().out

    doc = json.loads((out / "report.json").read_text())
    assert (out / "report.md").is_file()
    assert (out / "report.png").is_file() or (out / "report.html").is_file()
    verdicts = [t["verdict"] for t in doc["aggregate"]["targets"]]
    # --check: exit 1 exactly when some target fails.
    assert code == (1 if "FAIL" in verdicts else 0)
    assert "Targets of issue 3" in printed and "likeguard" in printed

    [scenario] = doc["scenarios"]
    assert scenario["name"] == f"seed-{SEED}"
    assert doc["aggregate"]["methods"] == scenario["methods"]  # one scenario: the same numbers
    lg = scenario["methods"]["likeguard"]
    assert lg["kinds"]["burst"]["recall"] > 0
    assert lg["kinds"]["burst"]["detected_attacks"] >= 1

    # The numbers agree with the alerts file and the truth file.
    alerts = [
        json.loads(line) for line in Path(scenario["info"]["alerts_file"]).read_text().splitlines()
    ]
    truth = json.loads((out / "scenarios" / f"seed-{SEED}" / "truth.json").read_text())
    flagged = {a for alert in alerts for a in alert["accounts"]}
    positives = {a for attack in truth["attacks"] for a in attack["accounts"]}
    organic = set(truth["organic_accounts"]) | set(truth["new_normal_accounts"])
    overall = lg["overall"]
    assert overall["flagged"] == len(flagged)
    assert overall["tp"] == len(flagged & positives)
    assert overall["tp"] + overall["fn"] == len(positives)
    assert lg["organic_total"] == len(organic)
    assert lg["organic_flagged"] == len(flagged & organic)
    replay = scenario["info"]["replay"]
    assert replay["alerts"] == {
        d: sum(1 for a in alerts if a["detector"] == d) for d in {a["detector"] for a in alerts}
    }
    for name, count in replay["alerts"].items():
        assert scenario["detectors"][name]["alerts"] == count
    assert replay["events"] == truth["counts"]["events"]
    kinds = {attack["kind"] for attack in truth["attacks"]}
    assert set(lg["kinds"]) == kinds
    for method in ("fraudar", "threshold"):
        ref = scenario["methods"][method]
        assert ref["overall"]["tp"] + ref["overall"]["fn"] == len(positives)

    # The fresh Redis namespace is gone.
    namespace = replay["redis_namespace"]
    assert list(redis.Redis.from_url(redis_url).scan_iter(match=f"{namespace}:*")) == []


def test_eval_of_a_scenario_dir_twice_gives_the_same_report(tmp_path: Path, redis_url: str) -> None:
    from stream.simulate.scenario import ScenarioConfig, generate, write

    scenario_dir = tmp_path / "scenario"
    write(generate(ScenarioConfig(seed=SEED + 1, hours=1, attacks=("burst",))), scenario_dir)
    reports = []
    for n in range(2):
        out = tmp_path / f"report{n}"
        args = parse(
            str(scenario_dir), "--out", str(out), "--no-progress", "--redis-url", redis_url
        )
        assert cli.run(args) == 0
        reports.append(json.loads((out / "report.json").read_text())["aggregate"]["methods"])
    assert reports[0] == reports[1]
    assert list(reports[0]["likeguard"]["kinds"]) == ["burst"]
