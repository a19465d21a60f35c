"""fan_imbalance: the pure parts (views support, verdicts, tier baselines, settings)."""

from __future__ import annotations

import dataclasses
import doctest
import math
from pathlib import Path

import pytest

from detectors import imbalance
from detectors.accounts import BASELINE_EPOCH_SECONDS, EpochTierQuantiles, TierQuantiles
from detectors.config import ConfigError, FanImbalanceConfig, WindowsConfig, load_config
from detectors.imbalance import (
    FanImbalanceDetector,
    Views,
    judge_author,
    judge_post,
    log_ratio,
    views_support,
)

CFG = FanImbalanceConfig()


# ------------------------------------------------------------------------ views support


def test_views_with_ordinary_like_and_completion_rates_support_the_likes() -> None:
    state, excess = views_support(Views(views=3000, completions=900, likes=150), CFG)
    assert state == "supported"
    assert excess < 1.0


def test_completion_under_five_percent_does_not_support_the_likes() -> None:
    state, excess = views_support(Views(views=1000, completions=35, likes=40), CFG)
    assert state == "unsupported"
    assert excess == pytest.approx(CFG.min_completion / 0.035)


def test_likes_close_to_the_views_do_not_support_themselves() -> None:
    state, _ = views_support(Views(views=600, completions=None, likes=500), CFG)
    assert state == "unsupported"


def test_many_likes_with_almost_no_views_are_unsupported_even_under_min_views() -> None:
    state, _ = views_support(Views(views=12, completions=0, likes=60), CFG)
    assert state == "unsupported"


def test_a_snapshot_from_before_a_surge_does_not_vouch_for_the_likes_after_it() -> None:
    before = Views(views=400, completions=150, likes=10)
    assert views_support(before, CFG, likes_now=12)[0] == "supported"
    assert views_support(before, CFG, likes_now=600)[0] == "unknown"
    verdict = judge_post(590, 600, followers=228, audience_threshold=0.15, views=before, cfg=CFG)
    assert verdict.flagged
    assert verdict.reasons == ("audience",)


@pytest.mark.parametrize(
    "views", [None, Views(views=0, completions=0, likes=0), Views(views=50, completions=1, likes=3)]
)
def test_no_snapshot_or_too_little_to_say_is_unknown(views: Views | None) -> None:
    assert views_support(views, CFG)[0] == "unknown"


# --------------------------------------------------------------------------- bought likes


def test_post_far_above_its_audience_without_views_is_flagged() -> None:
    verdict = judge_post(300, 400, followers=300, audience_threshold=0.15, views=None, cfg=CFG)
    assert verdict.flagged
    assert verdict.reasons == ("audience",)
    assert verdict.score == pytest.approx((400 / 300) / 0.15)
    assert verdict.evidence["views_support"] == "unknown"


def test_viral_post_whose_views_support_the_likes_is_not_flagged() -> None:
    views = Views(views=12000, completions=4000, likes=380)
    verdict = judge_post(300, 400, followers=300, audience_threshold=0.15, views=views, cfg=CFG)
    assert not verdict.flagged


def test_surge_without_completions_is_flagged_even_with_an_ordinary_audience_ratio() -> None:
    views = Views(views=900, completions=18, likes=70)
    verdict = judge_post(80, 90, followers=50_000, audience_threshold=0.15, views=views, cfg=CFG)
    assert verdict.flagged
    assert verdict.reasons == ("views",)
    assert verdict.evidence["completion_rate"] == pytest.approx(0.02)


def test_old_low_completion_without_a_surge_now_is_not_flagged() -> None:
    views = Views(views=900, completions=18, likes=70)
    verdict = judge_post(3, 90, followers=50_000, audience_threshold=0.15, views=views, cfg=CFG)
    assert not verdict.flagged


def test_small_numbers_never_fire() -> None:
    # 40 likes for an author with 10 followers: a huge ratio, but too few likes to say.
    verdict = judge_post(40, 40, followers=10, audience_threshold=0.15, views=None, cfg=CFG)
    assert not verdict.flagged


def test_unknown_followers_leave_only_the_views_check() -> None:
    verdict = judge_post(300, 400, followers=None, audience_threshold=0.15, views=None, cfg=CFG)
    assert not verdict.flagged
    assert verdict.evidence["audience_ratio"] is None


# ---------------------------------------------------------------------- bought followers


def test_author_whose_best_post_is_far_under_followers_is_flagged() -> None:
    flagged, score = judge_author(followers=50_000, best_likes=60, threshold=0.005)
    assert flagged
    assert score == pytest.approx(0.005 / (60 / 50_000), rel=1e-3)


def test_author_with_ordinary_engagement_is_not_flagged() -> None:
    flagged, score = judge_author(followers=8000, best_likes=240, threshold=0.005)
    assert not flagged
    assert score < 1.0


def test_author_with_no_likes_at_all_gets_a_capped_score() -> None:
    flagged, score = judge_author(followers=50_000, best_likes=0, threshold=0.005)
    assert flagged
    assert score == 100.0


def test_log_ratio_counts_zero_likes_as_half_a_like() -> None:
    assert log_ratio(0, 100) == pytest.approx(math.log(0.005))


# ---------------------------------------------------------------------- tier baselines


def test_tiers_follow_the_bounds() -> None:
    tiers = TierQuantiles((1000, 5000, 20000, 100000), q=0.5)
    assert [tiers.tier(f) for f in (0, 999, 1000, 4999, 5000, 20000, 10**6)] == [
        0,
        0,
        1,
        1,
        2,
        3,
        4,
    ]


LATER = 3 * BASELINE_EPOCH_SECONDS  # samples taken at 0 are taught by then


def teach(baseline: EpochTierQuantiles, tier: int, value: float, n: int, first: int = 0) -> None:
    """``n`` samples of ``value`` taken at time 0, taught by :data:`LATER`."""
    for k in range(first, first + n):
        baseline.learn(f"post{k}", f"post{k}:3", tier, value, ts=0.0)
    baseline.advance(LATER)


def test_tier_baseline_is_unused_until_it_has_enough_samples() -> None:
    detector = FanImbalanceDetector(dataclasses.replace(CFG, min_samples=50), WindowsConfig())
    tier = detector.audience.tier(300)
    assert detector.audience_threshold(tier, LATER) == CFG.min_audience_ratio
    teach(detector.audience, tier, math.log(0.2), 49)
    assert detector.audience_threshold(tier, LATER) == CFG.min_audience_ratio
    detector.audience.learn("post49", "post49:3", tier, math.log(0.2), ts=LATER)
    later = LATER + 2 * BASELINE_EPOCH_SECONDS
    detector.audience.advance(later)
    # A tier where 20 % is ordinary gets a bar of 3 × 20 %, above the fixed floor, from the
    # epoch two after the 50th sample's on; what earlier epochs were judged by stays.
    assert detector.audience_threshold(tier, later) == pytest.approx(
        CFG.audience_factor * 0.2, rel=0.05
    )
    assert detector.audience_threshold(tier, LATER) == CFG.min_audience_ratio


def test_learned_audience_baseline_never_lowers_the_floor() -> None:
    detector = FanImbalanceDetector(dataclasses.replace(CFG, min_samples=10), WindowsConfig())
    teach(detector.audience, 0, math.log(0.001), 20)
    assert sum(detector.audience.counts) == 20
    assert detector.audience_threshold(0, LATER) == CFG.min_audience_ratio


def test_learned_engagement_baseline_can_only_make_the_bar_stricter() -> None:
    detector = FanImbalanceDetector(dataclasses.replace(CFG, min_samples=10), WindowsConfig())
    tier = detector.engagement.tier(30_000)
    teach(detector.engagement, tier, math.log(0.002), 20)  # a tier where 0.2 % is ordinary
    assert detector.engagement_threshold(tier, LATER) == pytest.approx(
        CFG.engagement_factor * 0.002, rel=0.05
    )
    other = detector.engagement.tier(7000)
    teach(detector.engagement, other, math.log(0.05), 20)
    assert detector.engagement_threshold(other, LATER) == CFG.max_engagement


def test_epoch_baseline_is_the_same_however_its_samples_arrive() -> None:
    values = [math.log(0.01 * (1 + (k * 7) % 13)) for k in range(300)]
    samples = [(f"p{k}", f"p{k}:3", 0, v, 10.0 * k) for k, v in enumerate(values)]
    published = []
    for order, step in ((samples, 1), (samples[::-1], 7), (samples, 300)):
        baseline = EpochTierQuantiles((), q=0.9, epoch_seconds=BASELINE_EPOCH_SECONDS)
        for start in range(0, len(order), step):  # batches of `step` samples
            for sample in order[start : start + step]:
                baseline.learn(*sample[:4], ts=sample[4])
            baseline.advance(max(s[4] for s in order[: start + step]))
        baseline.advance(10_000.0)
        published.append([baseline.get(0, 1, ts) for ts in (1500.0, 2400.0, 10_000.0)])
    assert published[0] == published[1] == published[2]
    assert len(set(published[0])) == 3  # the baseline moved as the samples were taught


def test_a_flagged_subject_teaches_nothing_from_its_flag_on() -> None:
    baseline = EpochTierQuantiles((), q=0.5, epoch_seconds=100.0)
    baseline.learn("farmed", "farmed:3", 0, 1.0, ts=10.0)
    baseline.learn("farmed", "farmed:6", 0, 2.0, ts=20.0)
    baseline.flag("farmed", 20.0)  # judged after its samples were taken, before they are taught
    baseline.learn("farmed", "farmed:12", 0, 3.0, ts=30.0)
    baseline.advance(300.0)
    assert baseline.counts == [1]
    assert baseline.get(0, 1, 300.0) == 1.0


def test_checkpoint_round_trip_and_mismatched_checkpoints() -> None:
    first = FanImbalanceDetector(CFG, WindowsConfig())
    for value in range(100):
        first.audience.learn(f"p{value}", f"p{value}:3", 1, -3.0 + value / 100, ts=0.0)
    first.audience.advance(LATER)
    # A sample still held for its epoch is part of the checkpoint too.
    first.audience.learn("late", "late:3", 1, -1.0, ts=LATER)
    second = FanImbalanceDetector(CFG, WindowsConfig())
    second.load_model_state(first.model_state())
    assert second.audience.counts == first.audience.counts == [0, 100, 0, 0, 0]
    first.audience.advance(2 * LATER)
    second.audience.advance(2 * LATER)
    assert second.audience.counts == first.audience.counts == [0, 101, 0, 0, 0]
    assert second.audience.get(1, 1, 2 * LATER) == first.audience.get(1, 1, 2 * LATER)
    other_tiers = FanImbalanceDetector(
        dataclasses.replace(CFG, tier_bounds=(10, 20)), WindowsConfig()
    )
    other_tiers.load_model_state(first.model_state())
    assert sum(other_tiers.audience.counts) == 0
    other_tiers.load_model_state(None)
    assert sum(other_tiers.audience.counts) == 0


# ------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[fan_imbalance]\ntier_bounds = [5000, 1000]\n", "tier_bounds"),
        ("[fan_imbalance]\ntier_bounds = []\n", "tier_bounds"),
        ("[fan_imbalance]\naudience_quantile = 1\n", "audience_quantile"),
        ("[fan_imbalance]\nengagement_quantile = 0\n", "engagement_quantile"),
        ("[fan_imbalance]\nmin_post_likes = 0\n", "min_post_likes"),
        ("[fan_imbalance]\nreport_every_seconds = 0\n", "report_every_seconds"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_defaults_describe_the_documented_tiers() -> None:
    cfg = load_config().fan_imbalance
    assert cfg.tier_bounds == (1000, 5000, 20000, 100000)
    assert cfg.min_completion == 0.05


def test_doctests() -> None:
    result = doctest.testmod(imbalance)
    assert result.attempted > 0
    assert result.failed == 0
