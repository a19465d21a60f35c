"""fan_imbalance end to end on real Redis: bought likes, views support, bought followers."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from detectors.config import Config, load_config
from detectors.imbalance import FanImbalanceDetector
from detectors.pipeline import Pipeline
from detectors.state import RedisState
from schemas.records import AccountSnapshot, Alert, Event, LikeEvent, PostSnapshot
from tests.support.pipelines import only, run_batches

pytestmark = pytest.mark.integration
T0 = 1793491200.0
OLD = T0 - 400 * 86400.0


def only_fan_imbalance() -> Config:
    return only("fan_imbalance")


def run(pipeline: Pipeline, events: Sequence[Event], batch: int = 50) -> list[Alert]:
    return run_batches(pipeline, events, batch)


def author(account: str, followers: int, at: float = T0) -> AccountSnapshot:
    return AccountSnapshot(f"acct-{account}-{at}", account, at, created_at=OLD, followers=followers)


def like(
    event_id: str, actor: str, post: str, by: str, ts: float, dwell: int | None = 7000
) -> LikeEvent:
    return LikeEvent(event_id, "like", actor, post, by, ts, actor_created_at=OLD, dwell_ms=dwell)


def ordinary_background() -> list[Event]:
    """Ten authors of 1,000 followers whose posts get about 3 % of them over two hours."""
    events: list[Event] = [author(f"writer{a}", 1000) for a in range(10)]
    events += [
        like(f"bg{a}-{k}", f"fan{(a * 31 + k) % 300}", f"essay{a}", f"writer{a}", T0 + 60 + k * 240)
        for a in range(10)
        for k in range(30)
    ]
    return events


def bought_likes(start: float) -> list[Event]:
    """A 200-follower author's post: 8 genuine likes, then 300 farm likes in 30 minutes."""
    events: list[Event] = [author("small", 200)]
    events += [
        like(f"g{k}", f"follower{k}", "boosted", "small", start - 600 + k * 60) for k in range(8)
    ]
    events += [
        like(f"bot{k}", f"bot{k}", "boosted", "small", start + k * 6.0, dwell=600)
        for k in range(300)
    ]
    return events


def test_bought_likes_name_the_farm_and_the_author_but_not_the_genuine_likers(
    state: RedisState,
) -> None:
    start = T0 + 1800
    alerts = run(Pipeline(state, only_fan_imbalance()), ordinary_background() + bought_likes(start))
    posts = [a for a in alerts if a.subject_kind == "post"]
    assert posts, "the boosted post was not flagged"
    assert {a.subject_id for a in posts} == {"boosted"}
    first = posts[0]
    assert first.evidence["finding"] == "bought_likes"
    assert "audience" in first.evidence["reasons"]
    assert first.evidence["followers"] == 200
    assert first.evidence["audience_ratio"] >= first.evidence["audience_threshold"]
    # Flagged at the like that crossed the bar: 15 % of 200 followers is under 50 likes, so
    # the floor of 50 likers decides, about 42 farm likes (4 minutes) in.
    assert first.event_time - start < 300
    named = {acc for a in posts for acc in a.accounts}
    assert {f"bot{k}" for k in range(300)} <= named
    assert "small" in named
    assert not any(acc.startswith(("follower", "fan")) for acc in named)
    assert all(a.evidence["follow_up"] for a in posts[1:])
    assert not [a for a in alerts if a.subject_kind == "account"]


def test_reports_cut_at_max_accounts_continue_where_they_stopped(state: RedisState) -> None:
    cfg = only_fan_imbalance()
    cfg = dataclasses.replace(
        cfg, fan_imbalance=dataclasses.replace(cfg.fan_imbalance, max_accounts=40)
    )
    start = T0 + 1800
    pipeline = Pipeline(state, cfg)
    # The whole delivery in one batch, then a trickle of unrelated likes: each later batch
    # picks up the report where the previous answer was cut.
    alerts = run(pipeline, bought_likes(start), batch=400)
    for k in range(12):
        later = like(f"later{k}", f"fan{k}", "essay0", "writer0", start + 2000 + k * 30)
        alerts += pipeline.process([later]).alerts
    posts = [a for a in alerts if a.subject_kind == "post"]
    assert all(len(a.accounts) <= 41 for a in posts)  # 40 likers and the author
    named = {acc for a in posts for acc in a.accounts}
    assert {f"bot{k}" for k in range(300)} <= named
    assert [a.window_end for a in posts] == sorted(a.window_end for a in posts)


def test_viral_post_whose_views_back_its_likes_is_not_flagged(state: RedisState) -> None:
    start = T0 + 1800
    events: list[Event] = [author("small", 200)]
    likes = [like(f"v{k}", f"viewer{k}", "viral", "small", start + k * 5.0) for k in range(300)]
    snapshots = [
        PostSnapshot(
            f"ps{m}",
            "viral",
            "small",
            start + m * 300 + 1,
            views=3000 * (m + 1),
            completions=1000 * (m + 1),
        )
        for m in range(6)
    ]
    events += likes + snapshots
    alerts = run(Pipeline(state, only_fan_imbalance()), ordinary_background() + events)
    assert alerts == []


def test_surge_without_completions_is_flagged_whatever_the_audience(state: RedisState) -> None:
    start = T0 + 1800
    events: list[Event] = [author("celebrity", 50_000)]
    events += [
        PostSnapshot("ps-0", "clip", "celebrity", start - 1, views=50, completions=20),
        PostSnapshot("ps-1", "clip", "celebrity", start + 1500, views=900, completions=12),
    ]
    events += [
        like(f"c{k}", f"clicker{k}", "clip", "celebrity", start + k * 20.0, dwell=900)
        for k in range(120)
    ]
    alerts = run(Pipeline(state, only_fan_imbalance()), ordinary_background() + events)
    posts = [a for a in alerts if a.subject_kind == "post"]
    assert [a.subject_id for a in posts][:1] == ["clip"]
    assert posts[0].evidence["reasons"] == ["views"]
    assert posts[0].evidence["completion_rate"] < 0.05
    # Not before the snapshot that showed the missing completions.
    assert posts[0].event_time >= start + 1500


def followers_bought(hours: float) -> list[Event]:
    """``bf`` has 60,000 followers but its posts keep getting a handful of likes; ``big`` has
    6,000 and a post liked by 240 of them."""
    events: list[Event] = [author("bf", 60_000), author("big", 6000)]
    steps = int(hours * 12)
    events += [
        like(f"bf{k}", f"fan{k % 300}", f"bfpost{k % 3}", "bf", T0 + 30 + k * 300.0)
        for k in range(steps)
    ]
    events += [
        like(f"big{k}", f"fan{k}", "bigpost", "big", T0 + 45 + k * 3600 * hours / 240)
        for k in range(240)
    ]
    return events


def test_bought_followers_flag_the_author_once_the_stream_was_watched_long_enough(
    state: RedisState,
) -> None:
    alerts = run(Pipeline(state, only_fan_imbalance()), followers_bought(hours=3.0))
    accounts = [a for a in alerts if a.subject_kind == "account"]
    assert [a.subject_id for a in accounts] == ["bf"]
    alert = accounts[0]
    assert alert.accounts == ("bf",)
    assert alert.evidence["finding"] == "bought_followers"
    assert alert.evidence["followers"] == 60_000
    assert alert.evidence["engagement"] < alert.evidence["threshold"]
    cfg = load_config().fan_imbalance
    assert alert.event_time - T0 >= cfg.min_observed_seconds


def test_bought_followers_verdict_never_precedes_the_follower_jump(state: RedisState) -> None:
    # 800 followers and a few likes per post: ordinary. Then 50,000 followers at once, in a
    # batch whose likes of the author all came before the jump.
    jump = T0 + 2.5 * 3600
    before: list[Event] = [author("riser", 800)]
    before += [
        like(f"r{k}", f"fan{k % 300}", f"rpost{k % 3}", "riser", T0 + 30 + k * 290.0)
        for k in range(31)
    ]
    before.append(author("riser", 50_000, at=jump))
    after = [like(f"s{k}", f"fan{k}", "rpost0", "riser", jump + 60 + k * 60.0) for k in range(3)]
    pipeline = Pipeline(state, only_fan_imbalance())
    assert max(e.ts for e in before if isinstance(e, LikeEvent)) < jump
    assert pipeline.process(before).alerts == []
    alerts = pipeline.process(after).alerts
    assert [a.subject_id for a in alerts] == ["riser"]
    assert alerts[0].event_time >= jump
    assert alerts[0].evidence["followers"] == 50_000


def test_no_bought_followers_verdict_before_min_observed(state: RedisState) -> None:
    assert run(Pipeline(state, only_fan_imbalance()), followers_bought(hours=1.5)) == []


def test_redelivery_repeats_the_same_alerts_and_counts_nothing(state: RedisState) -> None:
    events = sorted(bought_likes(T0 + 600), key=lambda e: e.ts)
    pipeline = Pipeline(state, only_fan_imbalance())
    first = pipeline.process(events).alerts
    # The farm likes for 30 minutes: the first alert, then a follow-up every 10 minutes of
    # event time that fell due within the batch, each naming only the farm likes it covers.
    assert [(a.subject_id, a.evidence["follow_up"]) for a in first] == [
        ("boosted", False),
        ("boosted", True),
        ("boosted", True),
    ]
    named = [set(a.accounts) - {"small"} for a in first]
    assert set().union(*named) <= {f"bot{k}" for k in range(300)}
    assert sum(len(n) for n in named) == len(set().union(*named)), "a bot named twice"
    again = pipeline.process(events)
    assert again.outcomes[("like", "duplicate")] == 308
    assert state.client.zcard(state.key("likers", "boosted")) == 308
    # Every alert again, under the same ids (the follow-ups with the likes that claimed them:
    # were they lost in a crash before publishing, the redelivery sends them); no new
    # follow-up fell due meanwhile.
    assert sorted(a.alert_id for a in again.alerts) == sorted(a.alert_id for a in first)
    third = pipeline.process(events)
    assert {a.alert_id for a in third.alerts} <= {a.alert_id for a in first}


def test_tier_baselines_survive_a_restart(state: RedisState) -> None:
    pipeline = Pipeline(state, only_fan_imbalance())
    run(pipeline, ordinary_background())
    pipeline.close()
    learned = next(d for d in pipeline.detectors if isinstance(d, FanImbalanceDetector))
    assert sum(learned.audience.counts) > 0
    restarted = Pipeline(state, only_fan_imbalance())
    restored = next(d for d in restarted.detectors if isinstance(d, FanImbalanceDetector))
    assert restored.audience is not learned.audience
    assert restored.audience.counts == learned.audience.counts


def test_keys_have_ttls(state: RedisState) -> None:
    run(Pipeline(state, only_fan_imbalance()), bought_likes(T0 + 600) + followers_bought(2.5))
    keys = [
        state.key("likers", "boosted"),
        state.key("fi", "sus", "p", "boosted"),
        state.key("fi", "rep", "p", "boosted"),
        state.key("fi", "top", "bf"),
        state.key("fi", "watch"),
    ]
    assert all(state.client.exists(k) for k in keys)
    assert all(0 < state.client.ttl(k) <= 172800 for k in keys)
    # Authors under min_followers keep no best-post state at all.
    assert not state.client.exists(state.key("fi", "top", "small"))


def test_a_post_teaches_the_baseline_once_per_doubling_of_its_likers(
    state: RedisState,
) -> None:
    # Judged after every like or once for the whole stream, a post teaches its tier the
    # same values: not once per batch it appears in, which let a post farmed in many small
    # batches drag its own bar up until it was never flagged on audience.
    learned = []
    for size in (1, 10_000):
        each = RedisState(state.client, f"{state.namespace}-b{size}")
        try:
            pipeline = Pipeline(each, only_fan_imbalance())
            run(pipeline, ordinary_background(), batch=size)
        finally:
            each.delete_namespace()
        detector = next(d for d in pipeline.detectors if isinstance(d, FanImbalanceDetector))
        learned.append(detector.audience.counts)
    # Ten posts of 30 likers: each passes 3, 6, 12 and 24, of which learn_fraction is kept.
    assert sum(learned[0]) == sum(learned[1]) > 0
    assert sum(learned[0]) <= 10 * 4
    assert learned[0] == learned[1]
