"""The burst detector's own-history baseline, through the pipeline on real Redis."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import pytest

from detectors.config import BurstConfig, Config, load_config
from detectors.pipeline import Pipeline
from detectors.state import RedisState
from schemas.records import Alert, Event, LikeEvent
from tests.support.pipelines import only, run_batches

pytestmark = pytest.mark.integration
T0 = 1793491200.0
HOUR = 3600.0
OLD = T0 - 365 * 86400.0  # every account here was created long before watching started


def only_burst(burst: BurstConfig | None = None) -> Config:
    return only("burst", **({"burst": burst} if burst else {}))


def likes(
    actor: str, start: float, count: int, span: float, dwell_ms: int | None = None
) -> list[LikeEvent]:
    """``count`` likes spread evenly over ``span`` seconds from ``start``, each after
    ``dwell_ms`` on the post (unknown by default)."""
    step = span / count
    return [
        LikeEvent(
            f"{actor}-{start:.0f}-{k}",
            "like",
            actor,
            f"{actor}-p{k}-{start:.0f}",
            "au",
            start + k * step,
            actor_created_at=OLD,
            dwell_ms=dwell_ms,
        )
        for k in range(count)
    ]


def background(hours: int) -> list[LikeEvent]:
    """200 ordinary accounts, a like now and then: a quiet population."""
    return [
        e
        for i in range(200)
        for e in likes(f"user{i}", T0 + (i % 60) * 30, 2 * hours, hours * HOUR)
    ]


def run(pipeline: Pipeline, events: Sequence[Event], batch: int = 200) -> list[Alert]:
    return run_batches(pipeline, events, batch)


def heavy_liker() -> list[LikeEvent]:
    # Three hours at 120 likes an hour (under every peer bar), then one hour at 170: above the
    # 150-an-hour peer floor, but an ordinary hour for this account.
    return likes("heavy", T0, 360, 3 * HOUR) + likes("heavy", T0 + 3 * HOUR, 170, HOUR)


def test_a_habitually_heavy_liker_is_not_flagged_for_its_normal_day(state: RedisState) -> None:
    alerts = run(Pipeline(state, only_burst()), background(4) + heavy_liker())
    assert [a.subject_id for a in alerts] == []


def test_without_its_history_the_same_heavy_hour_is_a_burst(state: RedisState) -> None:
    # The control: with no weight on own history (factor 0, no relief) the peer bar alone
    # flags the heavy hour, so the test above is about history, not about the data.
    peers_only = dataclasses.replace(
        load_config().burst, history_factor=0.0, quiet_relief=(1.0, 1.0, 1.0, 1.0)
    )
    alerts = run(Pipeline(state, only_burst(peers_only)), background(4) + heavy_liker())
    assert [a.subject_id for a in alerts] == ["heavy"]


def hijacked_quiet_account() -> list[LikeEvent]:
    # Two likes in three hours of watching, then 110 likes in an hour: under the 150-an-hour
    # peer floor, far above its own history.
    return likes("quiet", T0 + 600, 2, 2 * HOUR) + likes("quiet", T0 + 3 * HOUR, 110, HOUR)


def test_a_hijacked_quiet_account_is_flagged_below_the_peer_bar(state: RedisState) -> None:
    alerts = run(Pipeline(state, only_burst()), background(4) + hijacked_quiet_account())
    assert [a.subject_id for a in alerts] == ["quiet"]
    evidence = alerts[0].evidence
    assert evidence["likes_in_window"] < evidence["population_threshold"]
    assert evidence["threshold"] < evidence["population_threshold"]
    assert evidence["history_confidence"] > 0.5
    assert evidence["own_expected_likes"] < 5
    assert alerts[0].event_time < T0 + 4 * HOUR


def test_without_relief_the_hijacked_account_stays_under_the_peer_bar(state: RedisState) -> None:
    no_relief = dataclasses.replace(load_config().burst, quiet_relief=(1.0, 1.0, 1.0, 1.0))
    alerts = run(Pipeline(state, only_burst(no_relief)), background(4) + hijacked_quiet_account())
    assert alerts == []


def test_a_fast_burst_of_an_unknown_account_is_still_flagged_within_minutes(
    state: RedisState,
) -> None:
    burst = likes("bot", T0 + 2 * HOUR, 120, 300.0)
    alerts = run(Pipeline(state, only_burst()), background(3) + burst)
    assert [a.subject_id for a in alerts] == ["bot"]
    assert alerts[0].event_time - burst[0].ts < 300.0


def test_history_lives_in_a_small_hash_with_a_ttl_and_counts_each_like_once(
    state: RedisState,
) -> None:
    pipeline = Pipeline(state, only_burst())
    events = likes("someone", T0, 30, HOUR)
    run(pipeline, events)
    key = state.key("burst", "hist", "someone")
    stored = {k.decode(): float(v) for k, v in state.client.hgetall(key).items()}
    # Creation time known from the events: no first-seen field.
    assert set(stored) == {"s", "qa", "qq", "qt"}
    tau = load_config().burst.history_tau_seconds
    watch = float(state.client.get(state.key("burst", "watch")))
    assert watch == pytest.approx(T0)
    # Scaled to the watch start: the decayed count at the last like is just under 30.
    decayed = stored["s"] * math.exp((watch - events[-1].ts) / tau)
    assert 29.9 < decayed <= 30.0
    assert 0 < state.client.ttl(key) <= load_config().burst.history_ttl_seconds
    # The recent likes, decayed with quick_tau to the newest recorded like; none was quick
    # (no dwell known). Recording starts with the batch that reaches the record bar, so
    # the recent count is at most the hour's likes decayed over the hour.
    quick_tau = load_config().burst.quick_tau_seconds
    assert stored["qt"] == pytest.approx(events[-1].ts)
    assert stored["qq"] == 0.0
    spread = sum(math.exp((e.ts - events[-1].ts) / quick_tau) for e in events)
    assert 0 < stored["qa"] <= spread + 1e-9
    run(pipeline, events)  # a redelivery: nothing is fresh, nothing is recorded twice
    again = {k.decode(): float(v) for k, v in state.client.hgetall(key).items()}
    assert again == pytest.approx(stored)


def test_only_accounts_busy_enough_for_history_to_matter_are_recorded(state: RedisState) -> None:
    # A like now and then can never lift an account's bar above the peer part: not recorded.
    # An account whose creation time is unknown keeps the time it was first recorded.
    anonymous = [dataclasses.replace(e, actor_created_at=None) for e in likes("anon", T0, 40, HOUR)]
    run(Pipeline(state, only_burst()), background(1) + anonymous)
    assert not state.client.exists(state.key("burst", "hist", "user7"))
    stored = state.client.hgetall(state.key("burst", "hist", "anon"))
    assert float(stored[b"f"]) == pytest.approx(T0, abs=HOUR)


def slow_takeover(dwell_ms: int) -> list[LikeEvent]:
    # 70 likes an hour for two hours, from 20 minutes after watching started: under the
    # 150-an-hour peer bar, and too early for a quiet history to lower it.
    return likes("taken", T0 + 1200, 140, 2 * HOUR, dwell_ms=dwell_ms)


def test_a_slow_takeover_pressing_without_viewing_is_flagged_before_it_has_history(
    state: RedisState,
) -> None:
    alerts = run(Pipeline(state, only_burst()), background(3) + slow_takeover(dwell_ms=700))
    # Found within the first hour, and again after the cool-down while it goes on.
    assert {a.subject_id for a in alerts} == {"taken"}
    assert alerts[0].event_time < T0 + 1200 + HOUR
    evidence = alerts[0].evidence
    assert evidence["window_seconds"] == 3600
    assert evidence["likes_in_window"] < evidence["population_threshold"]
    assert evidence["quick_share"] > load_config().burst.quick_share
    assert evidence["threshold"] == evidence["quick_threshold"]
    stored = state.client.hgetall(state.key("burst", "hist", "taken"))
    assert float(stored[b"qq"]) == pytest.approx(float(stored[b"qa"]))  # every like quick


def test_a_heavy_person_at_the_same_pace_who_views_the_posts_is_not(state: RedisState) -> None:
    alerts = run(Pipeline(state, only_burst()), background(3) + slow_takeover(dwell_ms=8000))
    assert alerts == []
