"""Swarm findings do not depend on how the stream is cut into batches (issue 4).

The live worker hands the pipeline batches whose boundaries depend on arrival timing, and
``likeguard replay`` cuts its own (``--batch-size``). The same capture replayed one event at a
time, in odd-sized batches, in the live worker's size and as one single batch must give the
same swarm alerts: same ids (so the same trigger events), same groups, same members, same
evidence. Only the swarm detector runs, so other detectors' batch behaviour cannot interfere.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest

from detectors.pipeline import Pipeline
from detectors.state import RedisState
from detectors.swarm_stage import SwarmStage
from schemas.records import Alert, LikeEvent
from stream.capture import Placed, merge_by_event_time
from stream.replay import RejectsFile, replay
from stream.simulate.scenario import CAPTURE_FILE, ScenarioConfig, generate, write
from tests.support.pipelines import only

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulated hour with a lockstep farm, a sparse farm and a like-for-like ring on
    top of a reduced Wikipedia-edit population (about 13,000 events, 7,500 likes)."""
    out = tmp_path_factory.mktemp("swarm-batching")
    config = ScenarioConfig(seed=11, hours=1, attacks=("swarm", "ring"), scale=0.3)
    write(generate(config), out)
    return out / CAPTURE_FILE


def replayed(redis_url: str, namespace: str, capture: Path, batch_size: int) -> list[Alert]:
    """Swarm alerts of ``capture`` replayed in batches of ``batch_size`` events, each alert
    once (a redelivered trigger may repeat an alert id; downstream deduplicates by id)."""
    state = RedisState.from_url(redis_url, namespace=namespace)
    out = io.StringIO()
    try:
        pipeline = Pipeline(state, only("swarm"))
        rejects = RejectsFile(capture.with_name(f"{namespace}.rejects.jsonl"))
        summary = replay([capture], pipeline, out, rejects, batch_size=batch_size)
    finally:
        state.delete_namespace()
    assert not summary.rejects
    alerts = [Alert.from_dict(json.loads(line)) for line in out.getvalue().splitlines()]
    unique = {a.alert_id: a for a in alerts if a.detector == "swarm"}
    return sorted(unique.values(), key=lambda a: (a.event_time, a.alert_id))


def test_swarm_alerts_are_the_same_whatever_the_batch_size(
    state: RedisState, redis_url: str, capture: Path
) -> None:
    # One event at a time is the reference: every other cut must give exactly its alerts.
    reference = replayed(redis_url, f"{state.namespace}-b1", capture, 1)
    patterns = {a.evidence["pattern"] for a in reference}
    assert patterns == {"lockstep", "ring"}, "the scenario's attacks were not found"
    expected = [a.to_dict() for a in reference]
    for size in (97, 1000, 1_000_000):
        alerts = replayed(redis_url, f"{state.namespace}-b{size}", capture, size)
        got = [a.to_dict() for a in alerts]
        # First the findings (group, members), then everything else of the alerts.
        assert [(a["subject_id"], a["accounts"]) for a in got] == [
            (a["subject_id"], a["accounts"]) for a in expected
        ], f"batch size {size}"
        assert got == expected, f"batch size {size}"


def test_the_swarm_stage_behind_detection_finds_what_replay_finds(
    state: RedisState, redis_url: str, capture: Path
) -> None:
    # A live worker's swarm stage runs after detection has counted likes further on (here:
    # the whole capture first), in its own batches: the same alerts as the pipeline.
    reference = [a.to_dict() for a in replayed(redis_url, f"{state.namespace}-r", capture, 1000)]
    assert reference
    ahead = RedisState.from_url(redis_url, namespace=f"{state.namespace}-ahead")
    try:
        config = only("swarm")
        no_swarm = dataclasses.replace(
            config, swarm=dataclasses.replace(config.swarm, enabled=False)
        )
        events = [p.event for p in merge_by_event_time([capture]) if isinstance(p, Placed)]
        likes = [e for e in events if isinstance(e, LikeEvent)]
        detection = Pipeline(ahead, no_swarm)
        for start in range(0, len(events), 1000):
            detection.process(events[start : start + 1000])
        stage = SwarmStage(ahead, config)
        alerts = [
            a
            for start in range(0, len(likes), 333)
            for a in stage.process(likes[start : start + 333])
        ]
    finally:
        ahead.delete_namespace()
    unique = {a.alert_id: a.to_dict() for a in alerts}
    assert list(unique.values()) == reference
