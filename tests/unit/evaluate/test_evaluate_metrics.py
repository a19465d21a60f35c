"""Scoring on hand-made truth and alerts, with every number worked out by hand."""

from __future__ import annotations

import math
from typing import Any

import pytest

from stream.evaluate.metrics import (
    Confusion,
    KindScore,
    MethodScore,
    Truth,
    check_targets,
    flags_from_alerts,
    merge_detector_scores,
    merge_scores,
    quantile,
    score_detectors,
    score_flags,
    union_flags,
)

ORGANIC = [f"o{i}" for i in range(1000)]


def truth_doc() -> dict[str, Any]:
    def attack(kind: str, n: int, accounts: list[str], start: float, ben: list[str]) -> dict:
        return {
            "kind": kind,
            "attack_id": f"{kind}-{n}",
            "accounts": accounts,
            "posts": [],
            "authors": [],
            "beneficiaries": ben,
            "start": start,
            "end": start + 100,
            "params": {},
        }

    return {
        "attacks": [
            attack("burst", 1, ["b1"], 1000.0, ["cust1"]),
            attack("burst", 2, ["b2"], 5000.0, []),
            attack("swarm", 1, ["s1", "s2", "s3", "s4"], 2000.0, ["cust2"]),
            attack("ring", 1, ["r1", "r2", "r3"], 3000.0, ["r1", "r2", "r3"]),
            attack("churn", 1, ["c1"], 4000.0, []),
        ],
        "organic_accounts": ORGANIC,
        "new_normal_accounts": ["n1", "n2"],
    }


def alert(detector: str, at: float, *accounts: str) -> dict[str, Any]:
    return {"detector": detector, "event_time": at, "accounts": list(accounts)}


ALERTS = [
    alert("burst", 1030.0, "b1"),
    alert("burst", 900.0, "o1"),
    alert("swarm", 2100.0, "s1", "s2", "s3", "cust2"),
    alert("swarm", 2050.0, "s4"),
    alert("swarm", 3500.0, "r1", "r2"),
    alert("churn", 1500.0, "b1"),
    alert("new_account_spike", 100.0, "n1"),
]


@pytest.fixture
def truth() -> Truth:
    return Truth.from_json(truth_doc())


def test_truth_sets(truth: Truth) -> None:
    assert len(truth.positives) == 10
    # r1..r3 are beneficiaries *and* attackers: attackers win; cust1, cust2 stay neutral.
    assert truth.neutral == {"cust1", "cust2"}
    assert len(truth.organic) == 1002
    assert truth.kinds == ["burst", "swarm", "ring", "churn"]


def test_flags_keep_the_earliest_alert_per_account() -> None:
    by_detector = flags_from_alerts(ALERTS)
    assert by_detector["burst"] == {"b1": 1030.0, "o1": 900.0}
    assert union_flags(by_detector)["b1"] == 1030.0  # burst before churn's 1500


def test_overall_scores(truth: Truth) -> None:
    score = score_flags(union_flags(flags_from_alerts(ALERTS)), truth)
    c = score.overall
    assert (c.tp, c.fp, c.fn, c.neutral, c.flagged) == (7, 2, 3, 1, 10)
    assert c.precision == pytest.approx(7 / 9)
    assert c.recall == pytest.approx(7 / 10)
    assert c.f1 == pytest.approx(98 / 133)  # 2PR / (P + R)
    assert score.organic_flagged == 2  # o1 and the new-but-normal n1
    assert score.organic_fp_share == pytest.approx(2 / 1002)


def test_recall_and_delay_per_kind(truth: Truth) -> None:
    kinds = score_flags(union_flags(flags_from_alerts(ALERTS)), truth).kinds
    assert list(kinds) == ["burst", "swarm", "ring", "churn"]
    assert kinds["burst"].recall == 0.5
    assert [a.delay for a in kinds["burst"].attacks] == [30.0, None]  # burst-2 missed
    assert kinds["burst"].median_delay == 30.0
    assert (kinds["swarm"].recall, kinds["swarm"].delays) == (1.0, [50.0])
    # The ring is caught by the swarm detector's alerts: recall is per kind, from all alerts.
    assert kinds["ring"].recall == pytest.approx(2 / 3)
    assert kinds["ring"].delays == [500.0]
    assert (kinds["churn"].recall, kinds["churn"].detected, kinds["churn"].median_delay) == (
        0.0,
        0,
        None,
    )


def test_flag_before_attack_start_counts_as_immediate(truth: Truth) -> None:
    kinds = score_flags({"b2": 4000.0}, truth).kinds
    assert kinds["burst"].attacks[1].delay == 0.0


def test_per_detector_precision_and_own_recall(truth: Truth) -> None:
    by_detector = flags_from_alerts(ALERTS)
    counts = {"burst": 2, "swarm": 3, "churn": 1, "new_account_spike": 1}
    scores = score_detectors(by_detector, truth, counts)
    assert list(scores) == ["burst", "new_account_spike", "fan_imbalance", "swarm", "churn"]
    assert scores["burst"].confusion.precision == 0.5
    assert scores["burst"].own_recall == 0.5
    assert scores["swarm"].confusion.precision == 1.0  # cust2 is neutral, not a false positive
    assert scores["swarm"].confusion.neutral == 1
    assert scores["swarm"].own_kinds == ("swarm", "ring")
    assert scores["swarm"].own_recall == pytest.approx(6 / 7)
    # churn flagged a burst account: fraud, so precise, but not the fraud it is built for.
    assert (scores["churn"].confusion.precision, scores["churn"].own_recall) == (1.0, 0.0)
    assert scores["new_account_spike"].confusion.precision == 0.0
    assert scores["new_account_spike"].own_kinds == ()
    assert scores["fan_imbalance"].alerts == 0
    assert scores["fan_imbalance"].confusion.precision is None


def test_undefined_ratios() -> None:
    assert Confusion().precision is None and Confusion().recall is None
    assert Confusion().f1 is None
    assert Confusion(fn=3).f1 == 0.0  # positives exist, nothing flagged
    assert Confusion(fp=3, fn=3).f1 == 0.0
    assert KindScore().recall is None


def test_quantile_matches_linear_interpolation() -> None:
    assert quantile([5.0], 0.9) == 5.0
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert quantile([0.0, 100.0], 0.9) == pytest.approx(90.0)


def test_merge_pools_counts_and_delays(truth: Truth) -> None:
    one = score_flags({"b1": 1010.0, "o1": 5.0}, truth)
    two = score_flags({"b1": 1090.0, "b2": 5020.0, "s1": 2600.0}, truth)
    merged = merge_scores([one, two])
    c = merged.overall
    assert (c.tp, c.fp, c.fn) == (1 + 3, 1 + 0, 9 + 7)
    assert merged.organic_flagged == 1 and merged.organic_total == 2004
    assert merged.kinds["burst"].recall == pytest.approx(3 / 4)
    assert sorted(merged.kinds["burst"].delays) == [10.0, 20.0, 90.0]
    assert merged.kinds["burst"].median_delay == 20.0
    assert merged.kinds["swarm"].delays == [600.0]
    # Pooled, not averaged: F1 from the pooled counts.
    assert c.f1 == pytest.approx(2 * (4 / 5) * (4 / 20) / (4 / 5 + 4 / 20))


def test_merge_detector_scores(truth: Truth) -> None:
    per = score_detectors(flags_from_alerts(ALERTS), truth, {"burst": 2})
    merged = merge_detector_scores([per, per])
    assert merged["burst"].alerts == 4
    assert merged["burst"].confusion.tp == 2 and merged["burst"].own_positives == 4


def _method(tp: int, fp: int, fn: int, organic_flagged: int = 0, **kinds: KindScore) -> MethodScore:
    return MethodScore(Confusion(tp=tp, fp=fp, fn=fn), dict(kinds), organic_flagged, 10_000)


def _kind(recall_caught: int, positives: int, *delays: float | None) -> KindScore:
    from stream.evaluate.metrics import AttackDelay

    attacks = [
        AttackDelay("k", f"k-{i}", 0.0, None if d is None else d) for i, d in enumerate(delays)
    ]
    return KindScore(positives, recall_caught, attacks)


def test_targets_all_pass() -> None:
    good = _method(95, 2, 5, 5, burst=_kind(9, 10, 10.0, 20.0), swarm=_kind(50, 50, 100.0))
    weak = _method(50, 50, 50)
    verdicts = {t.name: t.verdict for t in check_targets(good, {"FRAUDAR": weak, "thr": weak})}
    assert verdicts == {
        "overall F1": "PASS",
        "recall burst": "PASS",
        "recall swarm": "PASS",
        "organic FP share": "PASS",
        "median delay burst": "PASS",
        "median delay swarm": "PASS",
        "F1 above FRAUDAR": "PASS",
        "F1 above thr": "PASS",
    }


def test_targets_fail_each_way() -> None:
    lg = _method(
        80,
        20,
        20,
        11,  # 0.11 % of 10,000 organic accounts
        burst=_kind(7, 10, 400.0, 200.0, 500.0),  # recall 0.7, median 400 s
        swarm=_kind(0, 50, None),  # never detected
    )
    better = _method(90, 5, 10)
    targets = {t.name: t for t in check_targets(lg, {"FRAUDAR": better})}
    assert {n: t.verdict for n, t in targets.items()} == {
        "overall F1": "FAIL",
        "recall burst": "FAIL",
        "recall swarm": "FAIL",
        "organic FP share": "FAIL",
        "median delay burst": "FAIL",
        "median delay swarm": "FAIL",
        "F1 above FRAUDAR": "FAIL",
    }
    assert targets["median delay burst"].value == 400.0
    assert targets["organic FP share"].value == pytest.approx(0.0011)


def test_absent_kind_is_not_judged() -> None:
    lg = _method(10, 0, 0, burst=_kind(10, 10, 5.0))
    targets = {t.name: t for t in check_targets(lg, {"FRAUDAR": _method(0, 0, 10)})}
    assert targets["median delay swarm"].verdict == "n/a"
    assert "recall swarm" not in targets
    # A reference that flags nothing has F1 0, which likeguard beats.
    assert targets["F1 above FRAUDAR"].verdict == "PASS"


def test_unknown_flagged_accounts_are_false_positives(truth: Truth) -> None:
    score = score_flags({"zz-not-in-truth": 1.0}, truth)
    assert score.overall.fp == 1 and score.organic_flagged == 0
    assert not math.isnan(score.organic_fp_share or 0.0)
