"""new_account_spike end to end on real Redis: actor side, target side, ages from snapshots."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from detectors.config import Config
from detectors.pipeline import Pipeline
from detectors.state import RedisState
from schemas.records import AccountSnapshot, Alert, Event, LikeEvent
from tests.support.pipelines import only, run_batches

pytestmark = pytest.mark.integration
T0 = 1793491200.0
DAY = 86400.0
OLD = T0 - 400 * DAY  # created long before


def only_new_account_spike() -> Config:
    return only("new_account_spike")


def run(pipeline: Pipeline, events: Sequence[Event], batch: int = 50) -> list[Alert]:
    return run_batches(pipeline, events, batch)


def organic(n_users: int = 40, n_posts: int = 30) -> list[LikeEvent]:
    """Established accounts liking now and then over two hours."""
    return [
        LikeEvent(
            f"o{u}-{k}",
            "like",
            f"user{u}",
            f"post{(u * 7 + k) % n_posts}",
            f"author{(u + k) % 5}",
            T0 + u * 13 + k * 420,
            actor_created_at=OLD,
            dwell_ms=6000,
        )
        for u in range(n_users)
        for k in range(15)
    ]


def spree(
    actor: str, start: float, count: int, gap: float, created: float | None
) -> list[LikeEvent]:
    return [
        LikeEvent(
            f"{actor}-{k}",
            "like",
            actor,
            f"post{k % 30}",
            f"author{k % 5}",
            start + k * gap,
            actor_created_at=created,
            dwell_ms=600,
        )
        for k in range(count)
    ]


def test_fresh_account_liking_fast_is_flagged_once_with_evidence(state: RedisState) -> None:
    start = T0 + 1800
    events = organic() + spree("fresh", start, 60, 6.0, created=start - 600)
    alerts = run(Pipeline(state, only_new_account_spike()), events)
    assert [(a.detector, a.subject_kind, a.subject_id) for a in alerts] == [
        ("new_account_spike", "account", "fresh")
    ]
    alert = alerts[0]
    assert alert.accounts == ("fresh",)
    assert alert.evidence["side"] == "actor"
    assert alert.evidence["likes_in_window"] >= alert.evidence["threshold"]
    assert alert.evidence["account_age_seconds"] < 3600
    # Flagged at the like that crossed the bar, within minutes of the first.
    assert alert.event_time - start < 300


def test_established_account_at_the_same_pace_is_not_this_detectors_business(
    state: RedisState,
) -> None:
    events = organic() + spree("veteran", T0 + 1800, 60, 6.0, created=OLD)
    assert run(Pipeline(state, only_new_account_spike()), events) == []


def test_new_account_liking_at_a_human_pace_is_not_flagged(state: RedisState) -> None:
    # Genuinely new and quite keen: 18 likes in bursts over an hour.
    start = T0 + 1800
    keen = [
        e
        for burst in range(3)
        for e in spree(f"newbie-{burst}", start + burst * 1200, 6, 5.0, created=start - 900)
    ]
    keen = [dataclasses.replace(e, actor_id="newbie") for e in keen]
    assert run(Pipeline(state, only_new_account_spike()), organic() + keen) == []


def test_unknown_age_is_never_new(state: RedisState) -> None:
    events = organic() + spree("nobody-knows", T0 + 1800, 60, 6.0, created=None)
    assert run(Pipeline(state, only_new_account_spike()), events) == []


def test_age_comes_from_the_account_snapshot_when_the_event_has_none(state: RedisState) -> None:
    start = T0 + 1800
    snapshot = AccountSnapshot("snap-1", "fresh", start - 300, created_at=start - 600)
    events: list[Event] = [*organic(), snapshot, *spree("fresh", start, 60, 6.0, created=None)]
    alerts = run(Pipeline(state, only_new_account_spike()), events)
    assert [a.subject_id for a in alerts] == ["fresh"]
    assert alerts[0].evidence["account_age_seconds"] < 3600


def target_farm(n: int, start: float, ramp: float) -> list[LikeEvent]:
    """``n`` accounts created minutes before they each like one post of ``star``."""
    return [
        LikeEvent(
            f"farm-{i}",
            "like",
            f"farm{i}",
            "bought-post",
            "star",
            start + ramp * i / n,
            actor_created_at=start + ramp * i / n - 900,
            dwell_ms=500,
        )
        for i in range(n)
    ]


def test_post_liked_mostly_by_new_accounts_implicates_every_one_of_them(
    state: RedisState,
) -> None:
    start = T0 + 1800
    farm = target_farm(40, start, ramp=1800)
    alerts = run(Pipeline(state, only_new_account_spike()), organic() + farm)
    post_alerts = [a for a in alerts if a.subject_kind == "post"]
    assert post_alerts, "the farmed post was not flagged"
    assert {a.subject_id for a in post_alerts} == {"bought-post"}
    first = post_alerts[0]
    assert not first.evidence["follow_up"]
    assert first.evidence["new_likers"] >= 5
    assert first.evidence["new_share"] >= 0.6
    assert first.evidence["author_id"] == "star"
    # The first alert comes after about five of them; follow-ups name the rest.
    assert first.event_time - start < 600
    named = {acc for a in post_alerts for acc in a.accounts}
    assert {f"farm{i}" for i in range(40)} <= named
    assert "star" in named
    assert all(a.evidence["follow_up"] for a in post_alerts[1:])
    assert not any(acc.startswith("user") for acc in named)


def test_farm_liking_a_popular_post_in_passing_does_not_implicate_its_author(
    state: RedisState,
) -> None:
    start = T0 + 12 * 3600
    earlier = [
        LikeEvent(
            f"c{i}", "like", f"user{i}", "classic", "star", T0 + i * 600, actor_created_at=OLD
        )
        for i in range(60)
    ]
    farm = [
        LikeEvent(
            f"f{i}",
            "like",
            f"farm{i}",
            "classic",
            "star",
            start + i * 60,
            actor_created_at=start - 1800,
            dwell_ms=500,
        )
        for i in range(6)
    ]
    alerts = run(Pipeline(state, only_new_account_spike()), earlier + farm)
    assert [a.subject_id for a in alerts] == ["classic"]
    alert = alerts[0]
    assert set(alert.accounts) <= {f"farm{i}" for i in range(6)}
    assert len(alert.accounts) >= 5
    assert "star" not in alert.accounts
    assert not alert.evidence["author_implicated"]
    assert alert.evidence["author_id"] == "star"
    assert alert.evidence["likers_day"] > 2 * alert.evidence["new_likers_day"]


def crowd_on_hit(n: int, start: float) -> list[LikeEvent]:
    """Established accounts liking the post "hit" by "star", one every 20 s."""
    return [
        LikeEvent(f"c{i}", "like", f"user{i}", "hit", "star", start + i * 20, actor_created_at=OLD)
        for i in range(n)
    ]


def newcomers_on_hit(n: int, start: float, gap: float, created: float) -> list[LikeEvent]:
    """Accounts created at ``created`` liking "hit", one every ``gap`` seconds."""
    return [
        LikeEvent(
            f"n{i}",
            "like",
            f"newcomer{i}",
            "hit",
            "star",
            start + i * gap,
            actor_created_at=created,
        )
        for i in range(n)
    ]


def test_popular_post_with_a_few_new_likers_is_not_flagged(state: RedisState) -> None:
    start = T0 + 1800
    crowd = crowd_on_hit(40, start)
    newcomers = newcomers_on_hit(6, start + 5, gap=90, created=start - 3600)
    assert run(Pipeline(state, only_new_account_spike()), crowd + newcomers) == []


def test_likers_from_batches_without_new_accounts_count_towards_the_share(
    state: RedisState,
) -> None:
    # The crowd likes in batches of its own; the newcomers come later, in another batch.
    start = T0 + 1800
    crowd = crowd_on_hit(30, start)
    newcomers = newcomers_on_hit(6, start + 900, gap=60, created=start - 3600)
    pipeline = Pipeline(state, only_new_account_spike())
    assert run(pipeline, crowd, batch=10) == []
    assert pipeline.process(newcomers).alerts == []


def test_redelivered_batches_repeat_the_same_alert_ids(state: RedisState) -> None:
    start = T0 + 1800
    events = sorted(
        spree("fresh", start, 60, 6.0, created=start - 600) + target_farm(10, start, 300),
        key=lambda e: e.ts,
    )
    pipeline = Pipeline(state, only_new_account_spike())
    first = pipeline.process(events).alerts
    assert {a.subject_kind for a in first} == {"account", "post"}
    again = pipeline.process(events)
    assert set(again.outcomes) == {("like", "duplicate")}
    assert [a.alert_id for a in again.alerts] == [a.alert_id for a in first]


def test_keys_have_ttls(state: RedisState) -> None:
    start = T0 + 1800
    run(Pipeline(state, only_new_account_spike()), target_farm(20, start, 600))
    keys = [
        state.key("likers", "bought-post"),
        state.key("na", "sus", "p", "bought-post"),
        state.key("na", "rep", "p", "bought-post"),
    ]
    assert all(state.client.exists(k) for k in keys)
    assert all(0 < state.client.ttl(k) <= 172800 for k in keys)
