"""Swarm detector on real Redis: farms and rings found as groups, organic circles left alone.

The scenarios are small and hand-made: a lockstep farm (accounts liking the same fresh posts
within two minutes, without viewing them) or a like-for-like ring, on top of organic
background likes. Only the swarm detector runs, so other detectors' tuning cannot interfere.
"""

from __future__ import annotations

import dataclasses
import random
import struct
import zlib
from collections.abc import Sequence

import pytest

from detectors.config import SwarmConfig, load_config
from detectors.pipeline import Pipeline
from detectors.state import RedisState
from detectors.swarm import SwarmDetector
from schemas.records import Alert, Event, LikeEvent
from tests.support.pipelines import run_batches

pytestmark = pytest.mark.integration
T0 = 1793491200.0
FARM = [f"farm{i:02d}" for i in range(20)]
RING = [f"ring{i}" for i in range(8)]


def pipeline(state: RedisState, **settings: object) -> Pipeline:
    config = load_config()
    swarm = SwarmConfig(**{**_as_dict(config.swarm), **settings})
    return Pipeline(state, config, detectors=[SwarmDetector(swarm)])


def _as_dict(config: SwarmConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


def organic(rng: random.Random, users: int = 120, hours: float = 2.0) -> list[LikeEvent]:
    """Background: people liking posts of a shared pool at their own pace, after viewing."""
    events = []
    for u in range(users):
        for k in range(rng.randint(5, 25)):
            post = rng.randrange(300)
            events.append(
                LikeEvent(
                    f"o{u}-{k}",
                    "like",
                    f"user{u}",
                    f"o{post}",
                    f"author{post % 40}",
                    T0 + rng.uniform(0, hours * 3600),
                    dwell_ms=rng.randint(4000, 60000),
                )
            )
    return events


def farm(
    rng: random.Random, accounts: Sequence[str], posts: range, gap: float = 600.0
) -> list[LikeEvent]:
    """Every account likes every post within two minutes of its slot, quickly (no viewing)."""
    return [
        LikeEvent(
            f"f{p}-{a}",
            "like",
            a,
            f"q{p}",
            "customer",
            T0 + p * gap + rng.uniform(0, 120),
            dwell_ms=rng.randint(200, 1500),
        )
        for p in posts
        for a in accounts
    ]


def ring(rng: random.Random) -> list[LikeEvent]:
    """Each member posts 3 times over 3 hours; the others like each post within an hour."""
    events = []
    for m, author in enumerate(RING):
        for k in range(3):
            created = T0 + rng.uniform(0, 3 * 3600)
            for liker in RING:
                if liker != author:
                    events.append(
                        LikeEvent(
                            f"r{m}-{k}-{liker}",
                            "like",
                            liker,
                            f"rp{m}-{k}",
                            author,
                            created + rng.uniform(60, 3600),
                            dwell_ms=rng.randint(3000, 30000),
                        )
                    )
    return events


def run(pipe: Pipeline, events: Sequence[Event], batch: int = 200) -> list[Alert]:
    return run_batches(pipe, events, batch)


def flagged(alerts: list[Alert]) -> set[str]:
    return {a for alert in alerts for a in alert.accounts}


def test_lockstep_farm_is_one_group_with_its_members_only(state: RedisState) -> None:
    rng = random.Random(1)
    alerts = run(pipeline(state), organic(rng) + farm(rng, FARM, range(6)))
    assert alerts, "the farm was not found"
    assert {(a.detector, a.subject_kind, a.evidence["pattern"]) for a in alerts} == {
        ("swarm", "group", "lockstep")
    }
    assert len({a.subject_id for a in alerts}) == 1
    assert flagged(alerts) == set(FARM)
    first = alerts[0]
    assert first.evidence["size"] >= 15 and first.evidence["bursts"] >= 1
    assert first.window_start <= first.event_time <= first.window_end
    # Twenty accounts pressing like on one fresh post within two minutes without viewing it:
    # found during the first post.
    assert first.event_time < T0 + 120


@pytest.mark.parametrize("without", ["burst test", "dwell data"])
def test_pairs_alone_find_the_farm_within_a_few_posts(state: RedisState, without: str) -> None:
    rng = random.Random(1)
    events = organic(rng) + farm(rng, FARM, range(6))
    if without == "dwell data":
        events = [dataclasses.replace(e, dwell_ms=None) for e in events]
    alerts = run(pipeline(state, burst_min_likers=0), events)
    assert flagged(alerts) == set(FARM)
    first = alerts[0]
    assert first.evidence["bursts"] == 0
    assert first.evidence["size"] >= 15 and first.evidence["density"] >= 0.6
    # Quick co-likes weigh more, so with dwell data the second post links the farm; without
    # it, co-likes on a 20-liker post weigh about 0.35 each, and edges need 1.5.
    posts_needed = 2 if without == "burst test" else 5
    assert first.event_time < T0 + (posts_needed - 1) * 600 + 120


def test_workers_that_see_different_accounts_find_the_same_group(state: RedisState) -> None:
    rng = random.Random(2)
    events = sorted(organic(rng) + farm(rng, FARM, range(6)), key=lambda e: e.ts)
    # Two workers on two partitions (likes are keyed by actor), sharing only Redis.
    workers = [pipeline(state), pipeline(state)]
    alerts: list[Alert] = []
    for i in range(0, len(events), 100):
        chunk = events[i : i + 100]
        for n, worker in enumerate(workers):
            mine = [e for e in chunk if zlib.crc32(e.actor_id.encode()) % 2 == n]
            alerts += worker.process(mine).alerts
    assert len({a.subject_id for a in alerts}) == 1
    assert flagged(alerts) == set(FARM)


def test_a_group_found_again_keeps_its_id_and_a_grown_group_is_reported_again(
    state: RedisState,
) -> None:
    rng = random.Random(3)
    recruits = [f"recruit{i}" for i in range(8)]
    first_wave = farm(rng, FARM, range(3))
    second_wave = farm(rng, FARM + recruits, range(3, 8))
    pipe = pipeline(state)
    before = run(pipe, organic(rng) + first_wave)
    after = run(pipe, second_wave)
    assert before and after
    assert {a.subject_id for a in before + after} == {before[0].subject_id}
    assert flagged(before) == set(FARM)
    assert flagged(after) == set(FARM + recruits)
    assert after[-1].evidence["size"] == len(FARM + recruits)


def test_redelivered_batches_add_no_evidence_and_no_new_alerts(state: RedisState) -> None:
    rng = random.Random(4)
    events = organic(rng) + farm(rng, FARM, range(6))
    first = run(pipeline(state), events)
    assert first
    evidence = {
        key: state.client.hgetall(key)
        for key in state.client.scan_iter(match=f"{state.namespace}:sw:pw:*", count=1000)
    }
    # A restarted worker replays what it had already processed: the pipeline may repeat
    # the very same alerts (at-least-once), but nothing is counted again and nothing new
    # is found.
    again = run(pipeline(state), events)
    assert {a.alert_id for a in again} <= {a.alert_id for a in first}
    assert {key: state.client.hgetall(key) for key in evidence} == evidence


def test_camouflage_on_popular_posts_does_not_pull_in_their_fans(state: RedisState) -> None:
    rng = random.Random(5)
    fans = [f"fan{i}" for i in range(1500)]
    # A viral post per slot, liked in the same minutes by the farm and by 350 of its fans.
    viral = [
        LikeEvent(
            f"v{p}-{a}",
            "like",
            a,
            f"viral{p}",
            "star",
            T0 + p * 600 + rng.uniform(0, 240),
            dwell_ms=rng.randint(200, 1500) if a in FARM else rng.randint(4000, 20000),
        )
        for p in range(6)
        for a in FARM + rng.sample(fans, 350)
    ]
    alerts = run(pipeline(state), organic(rng) + farm(rng, FARM, range(6)) + viral)
    assert flagged(alerts) == set(FARM)


def test_like_for_like_ring_is_found(state: RedisState) -> None:
    rng = random.Random(6)
    alerts = run(pipeline(state), organic(rng, hours=4.0) + ring(rng))
    rings = [a for a in alerts if a.evidence["pattern"] == "ring"]
    assert rings, "the ring was not found"
    assert len({a.subject_id for a in rings}) == 1
    assert flagged(rings) == set(RING)
    assert rings[-1].evidence["density"] >= 0.6


def test_friends_liking_each_other_are_no_ring(state: RedisState) -> None:
    rng = random.Random(7)
    events = organic(rng, hours=4.0)
    # Ten pairs of friends, each liking the other's every post; and one sociable account
    # that trades likes with twelve people who do not know each other.
    for pair in range(10):
        a, b = f"friendA{pair}", f"friendB{pair}"
        for k in range(5):
            at = T0 + rng.uniform(0, 4 * 3600)
            events.append(LikeEvent(f"fa{pair}-{k}", "like", a, f"pb{pair}-{k}", b, at))
            events.append(LikeEvent(f"fb{pair}-{k}", "like", b, f"pa{pair}-{k}", a, at + 60))
    for k in range(12):
        at = T0 + rng.uniform(0, 4 * 3600)
        events.append(LikeEvent(f"hub{k}", "like", "hub", f"ph{k}", f"contact{k}", at))
        events.append(LikeEvent(f"hub{k}b", "like", f"contact{k}", f"phub{k}", "hub", at + 60))
        events.append(LikeEvent(f"hub{k}c", "like", "hub", f"ph{k}x", f"contact{k}", at + 90))
    assert run(pipeline(state), events) == []


def test_every_key_it_writes_expires(state: RedisState) -> None:
    rng = random.Random(8)
    run(pipeline(state), organic(rng) + farm(rng, FARM, range(6)) + ring(rng))
    keys = list(state.client.scan_iter(match=f"{state.namespace}:sw:*", count=1000))
    assert keys
    assert all(state.client.ttl(key) > 0 for key in keys)


class Crash(Exception):
    """A worker dying between the swarm script and the alert gate."""


@pytest.mark.parametrize("pattern", ["lockstep", "ring"])
def test_a_crash_before_the_alert_gate_loses_no_group_alert(
    state: RedisState, redis_url: str, pattern: str
) -> None:
    rng = random.Random(4)
    attack = farm(rng, FARM, range(6)) if pattern == "lockstep" else ring(rng)
    events = sorted(organic(rng) + attack, key=lambda e: e.ts)
    batches = [events[i : i + 200] for i in range(0, len(events), 200)]

    # Reference: the same stream with no crash, on a namespace of its own.
    clean = RedisState.from_url(redis_url, namespace=f"{state.namespace}-clean")
    try:
        expected = [a for b in batches for a in pipeline(clean).process(b).alerts]
    finally:
        clean.delete_namespace()
    assert expected, "the group was not found"

    # The first batch that reports a group dies after the swarm script: nothing published.
    worker = pipeline(state)
    real_admit = worker.gate.admit
    crashed_at = None

    def admit_or_crash(findings: Sequence[object]) -> list[Alert]:
        if findings and crashed_at is None:
            raise Crash
        return real_admit(findings)  # type: ignore[arg-type]

    worker.gate.admit = admit_or_crash  # type: ignore[method-assign]
    published: list[Alert] = []
    for n, b in enumerate(batches):
        try:
            published += worker.process(b).alerts
        except Crash:
            crashed_at = n
            break
    assert crashed_at is not None
    # A new worker gets the unacknowledged batch again, then the rest of the stream.
    restarted = pipeline(state)
    for b in batches[crashed_at:]:
        published += restarted.process(b).alerts
    assert {a.alert_id for a in published} == {a.alert_id for a in expected}
    assert flagged(published) == flagged(expected)


def test_pair_evidence_in_the_earlier_text_format_is_carried_over(state: RedisState) -> None:
    # Stored by an earlier version: weight|co-likes|last|first|strong as text.
    key = state.key("sw", "pw", "x1")
    state.client.hset(key, "x2", f"0.900000|2.000000|{T0:.6f}|{T0 - 60:.6f}|0.00")
    likes = [
        LikeEvent(f"t{n}", "like", actor, "fresh", "someone", T0 + 10 + n, dwell_ms=500)
        for n, actor in enumerate(["x1", "x2"])
    ]
    pipeline(state).process(likes)
    packed = state.client.hget(key, "x2")
    assert packed is not None and len(packed) == 40
    weight, count, last, first, _ = struct.unpack("<ddddd", packed)
    # The old evidence (decayed over 11 s: about the same) plus this co-like.
    assert weight > 0.9 and 2.9 < count < 3.0
    assert last == T0 + 11 and first == T0 - 60


def test_pair_hashes_stay_near_their_cap(state: RedisState) -> None:
    # a00 co-likes a fresh post with each of 64 accounts (lockstep pairs, kept under a00, the
    # lower id) and likes 64 authors' posts (ring pairs, also under a00).
    likes = []
    for n in range(64):
        post = f"fresh{n}"
        likes.append(LikeEvent(f"a-{n}", "like", "a00", post, f"z{n:02d}", T0 + 10 * n))
        likes.append(LikeEvent(f"b-{n}", "like", f"b{n:02d}", post, f"z{n:02d}", T0 + 10 * n + 1))
    pipeline(state, max_pairs_per_account=8).process(likes)
    # Checked on every 16th new pair of either kind (here they alternate), halved when over:
    # 64 pairs each were written, a few dozen at most are kept.
    for family in ("pw", "rp"):
        size = state.client.hlen(state.key("sw", family, "a00"))
        assert 0 < size <= 8 + 2 * 16, (family, size)
    # The lockstep pairs kept are the strongest: those with the latest co-likes.
    kept = {field.decode() for field in state.client.hkeys(state.key("sw", "pw", "a00"))}
    assert "b63" in kept and "b00" not in kept
