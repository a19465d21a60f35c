"""Burst thresholds from peers and own history: pure logic, no Redis."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from detectors.base import ACTOR_LIKES, Batch
from detectors.burst import BurstDetector, History, decayed_span, judge_window, quick_share
from detectors.config import BurstConfig, Config, ConfigError, WindowsConfig
from detectors.windows import ADDED, WindowCounts
from schemas.records import LikeEvent

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


# ------------------------------------------------------------------------------ quick likes
#
# The detector's judgement on hand-made window counts; the Redis exchange is stubbed with the
# history an account would have stored (tests/integration/detectors/test_burst_history.py
# runs the same cases through the pipeline and real Redis).

T0 = 1793491200.0
# No learned peer quantile: the peer bars are the min_likes floors (40, 60, 150, 600).
NO_LEARNING = dataclasses.replace(CFG, learn_fraction=0.0)
LENGTHS = WindowsConfig().lengths_seconds


class StubbedHistory(BurstDetector):
    """A burst detector whose Redis exchange returns a fixed history and keeps what it was
    asked to record."""

    def __init__(self, history: History | None = None, config: BurstConfig = NO_LEARNING):
        super().__init__(config, LENGTHS)
        self.history = history
        self.recorded: dict[str, tuple[int, float, float]] = {}

    def _exchange_history(  # type: ignore[override]
        self, state: object, accounts: dict[str, Any]
    ) -> tuple[float, dict[str, History]]:
        for account, seen in accounts.items():
            if seen.record and seen.fresh:
                recent = seen.recent_at(seen.newest, self.config.quick_tau_seconds)
                self.recorded[account] = (seen.fresh, *recent)
        wanted = {a: self.history for a, s in accounts.items() if s.want and self.history}
        return T0, wanted


def hour_of_likes(actor: str, hour_count: int, batch_likes: int, dwell_ms: int | None) -> Batch:
    """The last ``batch_likes`` likes of an hour in which ``actor`` liked ``hour_count`` times,
    30 s apart, half an hour after watching started (no history to speak of)."""
    start = T0 + 1800.0
    events = [
        LikeEvent(
            f"{actor}-{k}",
            "like",
            actor,
            f"p-{k}",
            "author",
            start + 30.0 * k,
            actor_created_at=T0 - 400 * 86400.0,
            dwell_ms=dwell_ms,
        )
        for k in range(batch_likes)
    ]
    before = hour_count - batch_likes
    windows = [
        WindowCounts(ADDED, (1, min(20, before + k + 1), before + k + 1, before + k + 1))
        for k in range(batch_likes)
    ]
    return Batch(events, {ACTOR_LIKES: windows}, state=None)  # type: ignore[arg-type]


def test_quick_share_adds_the_batch_to_the_decayed_recorded_likes() -> None:
    assert quick_share(T0, None, 0, 0, HOUR) == 0.0
    assert quick_share(T0, None, 10, 10, HOUR) == 1.0
    viewed = History(0.0, None, recent_likes=40.0, recent_quick=4.0, recent_at=T0)
    assert quick_share(T0, viewed, 10, 10, HOUR) == pytest.approx(14 / 50)
    # An hour later the recorded likes weigh e^-1 of what they did.
    later = quick_share(T0 + HOUR, viewed, 10, 10, HOUR)
    assert later == pytest.approx((10 + 4 / math.e) / (10 + 40 / math.e))
    # A like recorded after the event (out of order) is not decayed into the future.
    assert quick_share(T0 - 60, viewed, 10, 10, HOUR) == pytest.approx(14 / 50)


def test_a_slow_bot_burst_pressing_without_viewing_is_flagged_before_it_has_history() -> None:
    # 60 likes in the hour: under the 150-an-hour peer bar, and the account was watched only
    # half an hour, so its quiet history cannot lower the bar; but every like came after
    # under a second on the post.
    detector = StubbedHistory()
    findings = detector.detect(hour_of_likes("bot", 60, 20, dwell_ms=700))
    assert [f.subject_id for f in findings] == ["bot"]
    evidence = findings[0].evidence
    assert evidence["window_seconds"] == 3600
    assert evidence["likes_in_window"] < evidence["population_threshold"]
    assert evidence["quick_share"] == 1.0
    assert evidence["threshold"] == pytest.approx(CFG.quick_relief[2] * 150.0)
    assert evidence["quick_threshold"] == evidence["threshold"]
    # All 20 likes recorded, as quick likes, decayed to the newest (30 s apart).
    decayed = sum(math.exp(-30.0 * k / CFG.quick_tau_seconds) for k in range(20))
    assert detector.recorded == {"bot": (20, pytest.approx(decayed), pytest.approx(decayed))}


def test_the_same_hour_of_viewed_likes_is_not_a_burst() -> None:
    # A heavy person: the same 60 likes in the hour, each after eight seconds on the post.
    detector = StubbedHistory()
    assert detector.detect(hour_of_likes("person", 60, 20, dwell_ms=8000)) == []
    decayed = sum(math.exp(-30.0 * k / CFG.quick_tau_seconds) for k in range(20))
    assert detector.recorded == {"person": (20, pytest.approx(decayed), 0.0)}


def test_a_heavy_user_whose_recent_likes_were_viewed_is_not_flagged_for_a_quick_stretch() -> None:
    # Twenty quick likes in a row (a fast scrolling session), after forty viewed ones in the
    # same hour: the quick share of the hour stays low.
    viewed = History(0.0, None, recent_likes=40.0, recent_quick=2.0, recent_at=T0 + 1800.0)
    detector = StubbedHistory(viewed)
    assert detector.detect(hour_of_likes("person", 60, 20, dwell_ms=900)) == []


def test_likes_without_dwell_are_not_quick() -> None:
    assert StubbedHistory().detect(hour_of_likes("unknown", 60, 20, dwell_ms=None)) == []


def test_quick_likes_under_the_quick_bar_are_not_a_burst() -> None:
    # 40 likes in the hour, all quick: under quick_relief × the peer bar (45).
    assert StubbedHistory().detect(hour_of_likes("bot", 40, 20, dwell_ms=700)) == []


def test_without_quick_relief_the_slow_bot_stays_under_the_peer_bar() -> None:
    # The control: the same hour with quick relief off is not flagged, so the tests above are
    # about dwell, not about the counts.
    no_relief = dataclasses.replace(NO_LEARNING, quick_relief=(1.0, 1.0, 1.0, 1.0))
    detector = StubbedHistory(config=no_relief)
    assert detector.detect(hour_of_likes("bot", 60, 20, dwell_ms=700)) == []


def test_quick_relief_needs_one_share_per_window_length() -> None:
    with pytest.raises(ConfigError, match="quick_relief"):
        Config(burst=BurstConfig(quick_relief=(1.0, 0.3)))
    with pytest.raises(ConfigError, match="quick_relief"):
        BurstConfig(quick_relief=(1.0, 1.0, 0.0, 1.0))
    with pytest.raises(ConfigError, match="quick_share"):
        BurstConfig(quick_share=1.5)
