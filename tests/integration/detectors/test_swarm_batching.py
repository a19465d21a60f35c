"""Cross-account findings do not depend on how the stream is cut into batches (issue 4).

The live worker hands the pipeline batches whose boundaries depend on arrival timing, and
``likeguard replay`` cuts its own (``--batch-size``). The same capture replayed one event at a
time, in odd-sized batches, in the live worker's size and as one single batch must give the
same swarm alerts: same ids (so the same trigger events), same groups, same members, same
evidence. Only the swarm detector runs, so other detectors' batch behaviour cannot interfere.
So must new_account_spike and fan_imbalance, whose suspect reports fall due on a grid of
event times and whose baselines (River quantiles) judge each like by the population as of its
time; fan_imbalance up to the live worker's batch size (see its test).

A live deployment runs the detectors with a cross-account view (swarm, new_account_spike,
fan_imbalance) in one stage behind the workers' detection, in batches of its own
(``detectors/swarm_stage.py``): the last tests run it so, on counts detection gave first.
"""

from __future__ import annotations

import io
import json
import pickle
from itertools import pairwise
from pathlib import Path

import pytest

from detectors.config import Config, load_config
from detectors.pipeline import Pipeline
from detectors.state import RedisState
from detectors.swarm_stage import SwarmStage, stage_detectors, worker_detectors
from detectors.windows import DUPLICATE, WindowCounts
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


def replayed(
    redis_url: str, namespace: str, capture: Path, batch_size: int, detector: str = "swarm"
) -> list[Alert]:
    """``detector``'s alerts of ``capture`` replayed in batches of ``batch_size`` events, each
    alert once (a redelivered trigger may repeat an alert id; downstream deduplicates by id)."""
    state = RedisState.from_url(redis_url, namespace=namespace)
    out = io.StringIO()
    try:
        pipeline = Pipeline(state, only(detector))
        rejects = RejectsFile(capture.with_name(f"{namespace}.rejects.jsonl"))
        summary = replay([capture], pipeline, out, rejects, batch_size=batch_size)
    finally:
        state.delete_namespace()
    assert not summary.rejects
    alerts = [Alert.from_dict(json.loads(line)) for line in out.getvalue().splitlines()]
    unique = {a.alert_id: a for a in alerts if a.detector == detector}
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


def behind(
    redis_url: str,
    namespace: str,
    capture: Path,
    config: Config,
    takeover: tuple[int, int] | None = None,
    models: dict[str, object] | None = None,
    recounted: int = 0,
) -> dict[str, dict[str, object]]:
    """The stage's alerts, each once, when detection (the per-account detectors) has counted
    the whole capture before the stage takes its likes, with those counts, in other batches.

    ``takeover=(crash, resume)``: the stage dies (no shutdown) after its first ``crash``
    likes, and a new one takes over from like ``resume`` (before ``crash``: what was not
    acked is read again). ``models`` gets the stage's model states at the end (as plain
    data, :func:`plain`). ``recounted``: detection's first ``recounted`` events were counted
    twice, by a worker that died before forwarding them and by its successor (duplicate
    statuses): the stage gets the second counts."""
    ahead = RedisState.from_url(redis_url, namespace=namespace)
    try:
        events = [p.event for p in merge_by_event_time([capture]) if isinstance(p, Placed)]
        detection = Pipeline(ahead, config, worker_detectors(config))
        likes: list[LikeEvent] = []
        counts: list[WindowCounts | None] = []
        for start in range(0, len(events), 1000):
            chunk = events[start : start + 1000]
            windows = detection.process(chunk).like_windows
            rated = [e for e in chunk if isinstance(e, LikeEvent)]
            assert len(windows) == len(rated)
            for like, window in zip(rated, windows, strict=True):
                if like.type == "like":
                    likes.append(like)
                    counts.append(window)
        if recounted:
            again = [e for e in events[:recounted] if isinstance(e, LikeEvent)]
            second = dict(
                zip((e.event_id for e in again), detection.process(again).like_windows, strict=True)
            )
            assert {w.status for w in second.values() if w is not None} == {DUPLICATE}
            counts = [second.get(like.event_id, c) for like, c in zip(likes, counts, strict=True)]
        crash, resume = takeover or (len(likes), len(likes))
        stage = SwarmStage(ahead, config)
        alerts = []
        for start in range(0, crash, 333):
            end = min(start + 333, crash)
            got = stage.process(likes[start:end], counts[start:end])
            if end <= resume:  # what is read again may have died before it was published
                alerts += got
        if takeover is not None:
            stage = SwarmStage(ahead, config)  # restores the models from the checkpoint
            alerts += [
                a
                for start in range(resume, len(likes), 333)
                for a in stage.process(likes[start : start + 333], counts[start : start + 333])
            ]
        if models is not None:
            for detector in stage.pipeline.detectors:
                models[detector.name] = plain(detector.model_state())
    finally:
        ahead.delete_namespace()
    return {a.alert_id: a.to_dict() for a in alerts}


def test_the_swarm_stage_behind_detection_finds_what_replay_finds(
    state: RedisState, redis_url: str, capture: Path
) -> None:
    # A live worker's swarm stage runs after detection has counted likes further on (here:
    # the whole capture first), in its own batches: the same alerts as the pipeline.
    reference = [a.to_dict() for a in replayed(redis_url, f"{state.namespace}-r", capture, 1000)]
    assert reference
    got = behind(redis_url, f"{state.namespace}-ahead", capture, only("swarm"))
    assert list(got.values()) == reference


@pytest.fixture(scope="module")
def cross_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulated hour with every attack that a cross-account detector should find: a
    new-account spike on a post, a bought audience for an author, farms and a ring."""
    out = tmp_path_factory.mktemp("stage-cross")
    attacks = ("new_account_spike", "fan_imbalance", "swarm", "ring")
    write(generate(ScenarioConfig(seed=5, hours=1, attacks=attacks, scale=0.3)), out)
    return out / CAPTURE_FILE


def test_new_account_alerts_are_the_same_whatever_the_batch_size(
    state: RedisState, redis_url: str, cross_capture: Path
) -> None:
    reference = replayed(redis_url, f"{state.namespace}-n1", cross_capture, 1, NEW)
    assert {a.evidence["side"] for a in reference} == {"actor", "target"}
    assert any(a.evidence.get("follow_up") for a in reference), "no report past its first alert"
    expected = [a.to_dict() for a in reference]
    for size in (97, 1000, 1_000_000):
        alerts = replayed(redis_url, f"{state.namespace}-n{size}", cross_capture, size, NEW)
        assert [a.to_dict() for a in alerts] == expected, f"batch size {size}"


def test_fan_imbalance_alerts_are_the_same_whatever_the_batch_size_up_to_the_live_one(
    state: RedisState, redis_url: str, cross_capture: Path
) -> None:
    # Up to the live worker's batch size: fan_imbalance judges a post once per batch, and the
    # like it places the first alert at cannot precede the post snapshot the verdict used, so
    # one batch of the whole hour alerts once, at its end, naming everybody at once.
    every = load_config().fan_imbalance.report_every_seconds
    runs = {
        size: replayed(redis_url, f"{state.namespace}-f{size}", cross_capture, size, FAN)
        for size in (1, 97, 1000)
    }
    assert named_per_finding(runs[1]), "the bought likes were not found"
    for size, alerts in runs.items():
        assert named_per_finding(alerts) == named_per_finding(runs[1]), f"batch size {size}"
        assert [a.to_dict() for a in alerts] == [a.to_dict() for a in runs[1]], f"size {size}"
        # A report's follow-ups come a whole number of report periods after its first alert
        # (an answer cut at max_accounts is continued at the same time), each covering the
        # stretch since the one before.
        reports = 0
        for post in {a.subject_id for a in alerts if a.subject_kind == "post"}:
            for earlier, later in pairwise(a for a in alerts if a.subject_id == post):
                if not later.evidence["follow_up"]:
                    continue  # a new report: the last one ended
                if not earlier.evidence["follow_up"]:
                    first, reports = earlier, reports + 1
                periods = (later.event_time - first.event_time) / every
                assert abs(periods - round(periods)) < 1e-6, f"batch size {size}: {later}"
                assert later.window_start == earlier.window_end, f"batch size {size}"
        assert reports, "no report ran past its first alert"


NEW, FAN = "new_account_spike", "fan_imbalance"


def named_per_finding(alerts: list[Alert]) -> dict[tuple[str, str], set[str]]:
    named: dict[tuple[str, str], set[str]] = {}
    for a in alerts:
        named.setdefault((a.subject_kind, a.subject_id), set()).update(a.accounts)
    return named


def test_the_stage_runs_every_cross_account_detector_as_replay_does(
    state: RedisState, redis_url: str, cross_capture: Path
) -> None:
    # All detectors on: replay runs them in one pipeline, a live deployment splits them
    # between the workers and the stage, which runs behind detection in batches of its own.
    # Each must give replay's very alerts, though detection stored the snapshots (account
    # creation times, followers, views) a whole hour ahead of the stage: verdicts read them
    # as of the like's time.
    config = load_config()
    crossing = {d.name for d in stage_detectors(config)}
    assert crossing == {"swarm", "new_account_spike", "fan_imbalance"}
    out = io.StringIO()
    ns = f"{state.namespace}-all"
    reference_state = RedisState.from_url(redis_url, namespace=ns)
    try:
        rejects = RejectsFile(cross_capture.with_name(f"{ns}.rejects.jsonl"))
        replay([cross_capture], Pipeline(reference_state, config), out, rejects)
    finally:
        reference_state.delete_namespace()
    replayed_alerts = [Alert.from_dict(json.loads(line)) for line in out.getvalue().splitlines()]
    reference = {a.alert_id: a.to_dict() for a in replayed_alerts if a.detector in crossing}
    assert {a["detector"] for a in reference.values()} == crossing, "an attack went unfound"
    got = behind(redis_url, f"{state.namespace}-split", cross_capture, config)

    def of(alerts: dict[str, dict[str, object]], detector: str) -> dict[str, dict[str, object]]:
        return {i: a for i, a in alerts.items() if a["detector"] == detector}

    def flagged(alerts: dict[str, dict[str, object]]) -> dict[object, set[object]]:
        named: dict[object, set[object]] = {}
        for a in alerts.values():
            key = (a["detector"], a["subject_kind"], a["subject_id"])
            named.setdefault(key, set()).update(a["accounts"])  # type: ignore[call-overload]
        return named

    assert of(got, "swarm") == of(reference, "swarm")
    assert of(got, NEW) == of(reference, NEW)
    assert of(got, FAN) == of(reference, FAN)
    assert flagged(got) == flagged(reference)


def plain(value: object) -> object:
    """``value`` as plain data (objects as their attributes, mappings in key order), to
    compare model states by what they hold rather than by how they were built."""
    if isinstance(value, dict):
        return sorted((repr(k), plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(repr(v) for v in value)
    if hasattr(value, "__dict__") or hasattr(value, "__slots__"):
        names = list(getattr(value, "__dict__", {})) + list(getattr(value, "__slots__", ()))
        return type(value).__name__, sorted((n, plain(getattr(value, n))) for n in set(names))
    if isinstance(value, (bool, int, float, str, bytes, type(None))):
        return value
    return type(value).__name__, pickle.dumps(value)  # e.g. River's Rust-backed quantiles


def test_a_stage_taking_over_reads_again_without_learning_twice(
    state: RedisState, redis_url: str, cross_capture: Path
) -> None:
    # The stage dies after 5,000 likes, before the alerts of the last 1,500 were published,
    # and its successor reads those again (they were not acked): the same alerts as a stage
    # that never died, follow-ups included (due at a time, they are re-sent with the like
    # that claimed them), since the models (checkpointed after every batch) do not learn
    # those likes twice.
    config = load_config()
    learned: dict[str, object] = {}
    whole = behind(redis_url, f"{state.namespace}-whole", cross_capture, config, models=learned)
    assert {a["detector"] for a in whole.values()} == {"swarm", NEW, FAN}
    cap = config.windows.max_members
    # Then also with detection's first 4,000 events counted twice (a worker died after
    # counting them and before forwarding them): new to the stage, they are learned.
    for recounted in (0, 4000):
        relearned: dict[str, object] = {}
        again = behind(
            redis_url,
            f"{state.namespace}-again{recounted}",
            cross_capture,
            config,
            takeover=(5000, 3500),
            models=relearned,
            recounted=recounted,
        )
        assert relearned == learned, f"recounted {recounted}"
        assert again.keys() == whole.keys(), f"recounted {recounted}"
        for alert_id, alert in whole.items():
            if alert["evidence"].get("likers_day", 0) < cap:  # type: ignore[attr-defined]
                assert again[alert_id] == alert
            else:
                # A post's liker set at its cap ("at least max_members") is trimmed by rank,
                # and likes read again re-enter it: its counts may differ by a like or two.
                assert again[alert_id]["accounts"] == alert["accounts"]
