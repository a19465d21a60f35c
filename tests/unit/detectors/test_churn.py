"""Churn verdicts: volume, ratio and regularity together; pure logic, no Redis."""

from __future__ import annotations

import dataclasses

import pytest

from detectors.churn import CHURN_UNLIKED_POSTS, ChurnDetector, judge_cycles
from detectors.config import ChurnConfig, Config, ConfigError, WindowsConfig
from schemas.records import LikeEvent

CFG = ChurnConfig()


def test_a_cycling_bot_passes_all_three() -> None:
    verdict = judge_cycles(likes=60, unlikes=58, distinct_posts=20, threshold=20, config=CFG)
    assert verdict.passed
    assert verdict.cycles == 58
    assert verdict.volume == pytest.approx(58 / 20)


def test_a_heavy_likers_ordinary_unlikes_fail_on_ratio() -> None:
    verdict = judge_cycles(likes=400, unlikes=30, distinct_posts=30, threshold=20, config=CFG)
    assert verdict.volume >= 1.0 and verdict.regular
    assert not verdict.passed


def test_mass_unliking_old_likes_is_few_cycles() -> None:
    verdict = judge_cycles(likes=2, unlikes=80, distinct_posts=80, threshold=20, config=CFG)
    assert verdict.cycles == 2
    assert not verdict.passed


def test_a_few_second_thoughts_are_below_the_volume_bar() -> None:
    verdict = judge_cycles(likes=5, unlikes=5, distinct_posts=5, threshold=8, config=CFG)
    assert verdict.ratio == 1.0
    assert not verdict.passed


def test_the_same_few_posts_cycled_again_and_again_is_regular() -> None:
    verdict = judge_cycles(likes=30, unlikes=30, distinct_posts=3, threshold=20, config=CFG)
    assert verdict.repeats == 10.0
    assert verdict.passed


def test_neither_many_posts_nor_repeats_is_not_regular() -> None:
    strict = dataclasses.replace(CFG, min_distinct_posts=50, min_repeats=3.0)
    verdict = judge_cycles(likes=30, unlikes=30, distinct_posts=20, threshold=20, config=strict)
    assert verdict.volume >= 1.0 and verdict.ratio >= strict.min_ratio
    assert not verdict.regular and not verdict.passed


def test_the_unliked_posts_family_counts_posts_of_unlikes_only() -> None:
    detector = ChurnDetector(CFG, WindowsConfig().lengths_seconds)
    (spec,) = detector.window_specs()
    unlike = LikeEvent("e1", "unlike", "a", "p9", "au", 1.0)
    like = LikeEvent("e2", "like", "a", "p9", "au", 1.0)
    assert spec.name == CHURN_UNLIKED_POSTS
    assert spec.key_of(unlike) == "a" and spec.key_of(like) is None
    assert spec.member_of(unlike) == "p9"
    assert spec.latest


def test_min_cycles_needs_one_value_per_window_length() -> None:
    with pytest.raises(ConfigError, match="min_cycles"):
        Config(churn=ChurnConfig(min_cycles=(8, 12)))
    with pytest.raises(ConfigError, match="learn_window_seconds"):
        Config(churn=ChurnConfig(learn_window_seconds=5))
    with pytest.raises(ConfigError, match="quantile"):
        ChurnConfig(quantile=1.0)
