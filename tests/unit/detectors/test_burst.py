"""Burst thresholds from peers and own history: pure logic, no Redis."""

from __future__ import annotations

import dataclasses

import pytest

from detectors.burst import BurstDetector, decayed_span, judge_window
from detectors.config import BurstConfig, Config, ConfigError, WindowsConfig

HOUR = 3600.0
CFG = BurstConfig()


def test_an_account_without_history_meets_the_peer_bar_alone() -> None:
    verdict = judge_window(HOUR, 150.0, likes_before=0.0, watched=0.0, config=CFG, relief=0.4)
    assert verdict.threshold == 150.0
    assert verdict.confidence == 0.0


def test_a_quiet_well_known_account_meets_a_lower_bar_but_never_below_the_relief() -> None:
    bars = [
        judge_window(HOUR, 150.0, likes_before=1.0, watched=h * HOUR, config=CFG, relief=0.4)
        for h in (0.5, 2, 8, 100)
    ]
    thresholds = [b.threshold for b in bars]
    assert thresholds == sorted(thresholds, reverse=True)  # more watching, lower bar
    assert thresholds[0] < 150.0
    assert all(t >= 0.4 * 150.0 for t in thresholds)
    assert thresholds[-1] == pytest.approx(0.4 * 150.0, rel=0.02)


def test_a_habitually_heavy_liker_is_judged_by_its_own_rate() -> None:
    # 100 likes an hour for 10 hours: its normal hour is 100, five times that is the bar.
    verdict = judge_window(
        HOUR, 150.0, likes_before=1000.0, watched=10 * HOUR, config=CFG, relief=0.4
    )
    assert verdict.own_expected == pytest.approx(100.0)
    assert verdict.threshold == pytest.approx(CFG.history_factor * 100.0)


def test_a_short_history_is_spread_over_the_prior_rather_than_extrapolated() -> None:
    # 10 likes in the first 6 minutes watched is not "100 likes an hour" yet.
    verdict = judge_window(HOUR, 150.0, likes_before=10.0, watched=360.0, config=CFG, relief=0.4)
    assert verdict.own_expected == pytest.approx(10.0 * HOUR / CFG.history_prior_seconds)
    assert verdict.threshold > 0.9 * 150.0  # barely watched: still about the peer bar


def test_relief_one_means_history_never_lowers_the_bar() -> None:
    verdict = judge_window(60.0, 25.0, likes_before=0.0, watched=100 * HOUR, config=CFG, relief=1)
    assert verdict.threshold == 25.0


def test_decayed_span_is_the_plain_span_when_short_and_bounded_by_tau() -> None:
    tau = CFG.history_tau_seconds
    assert decayed_span(HOUR, tau) == pytest.approx(HOUR, rel=0.01)
    assert decayed_span(100 * tau, tau) == pytest.approx(tau)
    assert decayed_span(0.0, tau) == 0.0


def test_quiet_relief_needs_one_value_per_window_length() -> None:
    with pytest.raises(ConfigError, match="quiet_relief"):
        Config(burst=BurstConfig(quiet_relief=(1.0, 0.5)))


@pytest.mark.parametrize("relief", [0.0, 1.5])
def test_quiet_relief_must_be_a_share(relief: float) -> None:
    with pytest.raises(ConfigError, match="quiet_relief"):
        BurstConfig(quiet_relief=(1.0, 1.0, relief, 1.0))


def test_history_gap_and_learn_window_must_be_window_lengths() -> None:
    with pytest.raises(ConfigError, match="history_gap_seconds"):
        Config(burst=BurstConfig(history_gap_seconds=1234))
    with pytest.raises(ConfigError, match="learn_window_seconds"):
        Config(burst=BurstConfig(learn_window_seconds=1234))
    lengths = WindowsConfig().lengths_seconds
    with pytest.raises(ValueError, match="history_gap_seconds"):
        BurstDetector(dataclasses.replace(CFG, history_gap_seconds=7), lengths)
