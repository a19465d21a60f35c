"""The churn detector through the pipeline on real Redis: cyclers flagged, ordinary unlikers not."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from detectors.config import Config
from detectors.pipeline import Pipeline
from detectors.state import RedisState
from schemas.records import Alert, Event, LikeEvent
from tests.support.pipelines import only, run_batches

pytestmark = pytest.mark.integration
T0 = 1793491200.0
HOUR = 3600.0


def only_churn() -> Config:
    return only("churn")


def like(actor: str, post: str, ts: float, tag: str = "") -> LikeEvent:
    return LikeEvent(f"l-{actor}-{post}-{ts:.3f}{tag}", "like", actor, post, "au", ts)


def unlike(actor: str, post: str, ts: float) -> LikeEvent:
    return LikeEvent(f"u-{actor}-{post}-{ts:.3f}", "unlike", actor, post, "au", ts)


def cycler(actor: str, start: float, cycles: int, posts: int) -> list[LikeEvent]:
    """Like then unlike seconds later, every 25 s, over a pool of ``posts`` posts."""
    events = []
    for k in range(cycles):
        at = start + 25.0 * k
        post = f"{actor}-p{k % posts}"
        events += [like(actor, post, at), unlike(actor, post, at + 8.0)]
    return events


def ordinary_people() -> list[LikeEvent]:
    """People who unlike now and then, including the kinds that look most like churn."""
    events: list[LikeEvent] = []
    for i in range(100):  # a like every 10 minutes, one in ten taken back seconds later
        for k in range(24):
            at = T0 + i + 600.0 * k
            events.append(like(f"user{i}", f"u{i}-p{k}", at))
            if (i + k) % 10 == 0:
                events.append(unlike(f"user{i}", f"u{i}-p{k}", at + 4.0))
    for k in range(600):  # a heavy liker: 150 likes an hour, unlikes 8 % of them
        at = T0 + 24.0 * k
        events.append(like("heavy", f"h-p{k}", at))
        if k % 12 == 0:
            events.append(unlike("heavy", f"h-p{k}", at + 3.0))
    for k in range(60):  # cleaning up: unliking 60 old likes, liking nothing new
        events.append(unlike("cleaner", f"old-p{k}", T0 + HOUR + 20.0 * k))
    for k in range(6):  # second thoughts: the same post, back and forth a few times
        events += [
            like("doubter", "d-p", T0 + 300.0 * k),
            unlike("doubter", "d-p", T0 + 300.0 * k + 30),
        ]
    return events


def run(pipeline: Pipeline, events: Sequence[Event], batch: int = 200) -> list[Alert]:
    return run_batches(pipeline, events, batch)


def test_ordinary_unlikers_are_never_flagged(state: RedisState) -> None:
    pipeline = Pipeline(state, only_churn())
    assert run(pipeline, ordinary_people()) == []
    (detector,) = pipeline.detectors
    assert detector.model.n_seen > 0  # it learned the population's unlike counts meanwhile


def test_a_cycling_bot_is_flagged_once_with_the_evidence(state: RedisState) -> None:
    bot = cycler("bot", T0 + HOUR, cycles=150, posts=40)
    alerts = run(Pipeline(state, only_churn()), ordinary_people() + bot)
    assert [(a.detector, a.subject_id) for a in alerts] == [("churn", "bot")]
    alert = alerts[0]
    evidence = alert.evidence
    assert alert.accounts == ("bot",)
    assert evidence["cycles"] >= evidence["threshold"]
    assert evidence["cycles"] == min(evidence["likes"], evidence["unlikes"])
    assert evidence["ratio"] >= 0.9
    assert alert.window_end - alert.window_start == evidence["window_seconds"]
    assert str(evidence["window_seconds"]) in evidence["by_window"]
    assert alert.event_time - bot[0].ts < 10 * 60  # a few minutes of cycling is enough


def test_cycling_the_same_post_over_and_over_is_flagged(state: RedisState) -> None:
    bot = cycler("looper", T0 + HOUR, cycles=80, posts=1)
    alerts = run(Pipeline(state, only_churn()), ordinary_people() + bot)
    assert [a.subject_id for a in alerts] == ["looper"]
    assert alerts[0].evidence["distinct_posts"] == 1
    assert alerts[0].evidence["repeats"] >= 8


def test_a_bot_hiding_its_cycles_among_many_plain_likes_is_not_flagged_for_churn(
    state: RedisState,
) -> None:
    # Four plain likes per cycle: the ratio stays at 0.2, the signature of an ordinary heavy
    # liker, whatever the volume. (Its like rate is the burst detector's business.)
    events = cycler("mixed", T0 + HOUR, cycles=100, posts=50)
    events += [like("mixed", f"m-p{k}", T0 + HOUR + 6.0 * k + 1, "x") for k in range(400)]
    assert run(Pipeline(state, only_churn()), ordinary_people() + events) == []


def test_a_redelivered_batch_repeats_the_same_alert(state: RedisState) -> None:
    events = sorted(ordinary_people() + cycler("bot", T0 + HOUR, 150, 40), key=lambda e: e.ts)
    pipeline = Pipeline(state, only_churn())
    first = run(pipeline, events)
    trigger = next(i for i, e in enumerate(events) if e.ts == first[0].event_time)
    batch = events[max(0, trigger - 50) : trigger + 1]
    again = pipeline.process(batch).alerts
    assert [a.alert_id for a in again] == [first[0].alert_id]
