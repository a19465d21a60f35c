"""The pipeline end to end on real Redis: burst alerts, idempotency, restart safety."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from detectors.base import Batch, Detector, Finding, actor_finding
from detectors.config import Config
from detectors.pipeline import Pipeline
from detectors.state import RedisState
from schemas.records import AccountSnapshot, Alert, Event, LikeEvent
from tests.support.pipelines import only, run_batches

pytestmark = pytest.mark.integration
T0 = 1793491200.0


def organic_and_burst() -> list[LikeEvent]:
    events = [
        LikeEvent(f"o{i}-{k}", "like", f"user{i}", f"p{k}", "author", T0 + k * 400 + i)
        for i in range(50)
        for k in range(5)
    ]
    events += [LikeEvent(f"b{k}", "like", "bot", f"q{k}", "x", T0 + 1000 + k) for k in range(40)]
    return sorted(events, key=lambda e: e.ts)


def burst_only_config() -> Config:
    return only("burst")


def run(pipeline: Pipeline, events: Sequence[Event], batch: int = 100) -> list[Alert]:
    return run_batches(pipeline, events, batch)


def test_burst_account_gets_one_alert_with_evidence(state: RedisState) -> None:
    alerts = run(Pipeline(state, burst_only_config()), organic_and_burst())
    assert [(a.detector, a.subject_id) for a in alerts] == [("burst", "bot")]
    alert = alerts[0]
    assert alert.accounts == ("bot",)
    assert alert.evidence["likes_in_window"] >= 20
    assert alert.window_end == alert.event_time
    assert alert.window_end - alert.window_start == alert.evidence["window_seconds"]
    assert alert.severity in ("low", "medium", "high")


def test_redelivered_batch_counts_nothing_and_repeats_the_same_alert_id(
    state: RedisState,
) -> None:
    events = organic_and_burst()
    pipeline = Pipeline(state, burst_only_config())
    first = run(pipeline, events, batch=len(events))
    again = pipeline.process(events)
    assert set(again.outcomes) == {("like", "duplicate")}
    # The cool-down record names the alert: a redelivery re-emits that very alert (so a crash
    # between storing and publishing loses nothing) and nothing new.
    assert [a.alert_id for a in again.alerts] == [a.alert_id for a in first]


def test_same_input_gives_the_same_alerts_in_a_fresh_namespace(
    state: RedisState, redis_url: str
) -> None:
    first = run(Pipeline(state, burst_only_config()), organic_and_burst())
    other = RedisState.from_url(redis_url, namespace=state.namespace + "-b")
    try:
        second = run(Pipeline(other, burst_only_config()), organic_and_burst())
    finally:
        other.delete_namespace()
    assert [a.to_json() for a in first] == [a.to_json() for a in second]


def test_model_state_survives_a_restart(state: RedisState) -> None:
    pipeline = Pipeline(state, burst_only_config())
    run(pipeline, organic_and_burst())
    pipeline.close()
    learned = pipeline.detectors[0].model_state()
    restarted = Pipeline(state, burst_only_config())
    restored = restarted.detectors[0].model_state()
    assert restored is not learned
    assert restored.n_seen == learned.n_seen > 0
    assert restored.quantiles() == learned.quantiles()


def test_snapshots_keep_the_newest(state: RedisState) -> None:
    pipeline = Pipeline(state, burst_only_config())
    newer = AccountSnapshot("s2", "acc", T0 + 100, T0 - 86400, followers=500)
    older = AccountSnapshot("s1", "acc", T0, T0 - 86400, followers=10)
    result = pipeline.process([newer, older])
    assert result.outcomes[("account", "accepted")] == 1
    assert result.outcomes[("account", "duplicate")] == 1
    assert state.client.hget(state.key("acct", "acc"), "followers") == b"500"


class Recording(Detector):
    """Prepares, then judges each batch in whatever thread the pipeline gives it."""

    def __init__(self, name: str, calls: list[str], fail: bool = False) -> None:
        self.name = name  # type: ignore[misc]
        self.calls = calls
        self.fail = fail
        self.threads: set[str] = set()

    def prepare(self, batch: Batch) -> None:
        self.calls.append(f"prepare {self.name}")

    def detect(self, batch: Batch) -> list[Finding]:
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise RuntimeError(f"{self.name} failed")
        return [actor_finding(self.name, e, 1.0, 60.0, {}) for e in batch.events[:1]]


def test_detectors_judge_at_once_after_every_prepare_and_keep_their_order(
    state: RedisState,
) -> None:
    calls: list[str] = []
    detectors = [Recording(name, calls) for name in ("d1", "d2", "d3")]
    pipeline = Pipeline(state, burst_only_config(), detectors=detectors)
    like = LikeEvent("e1", "like", "a", "p", "u", T0)
    alerts = pipeline.process([like]).alerts
    assert calls == ["prepare d1", "prepare d2", "prepare d3"]
    assert [a.detector for a in alerts] == ["d1", "d2", "d3"]  # same time: detectors' order
    assert detectors[0].threads == {threading.current_thread().name}
    assert all(d.threads and not d.threads & detectors[0].threads for d in detectors[1:])
    pipeline.close()


def test_a_failing_detector_fails_the_batch(state: RedisState) -> None:
    calls: list[str] = []
    detectors = [Recording("d1", calls), Recording("d2", calls, fail=True)]
    pipeline = Pipeline(state, burst_only_config(), detectors=detectors)
    with pytest.raises(RuntimeError, match="d2 failed"):
        pipeline.process([LikeEvent("e1", "like", "a", "p", "u", T0)])
    pipeline.close()
