"""Swarm detector: the pure parts (settings handed to Lua, reply parsing, config checks)."""

from __future__ import annotations

import contextlib
import doctest
import json
import re
import zlib
from importlib import resources
from typing import Any

import pytest

from detectors import swarm
from detectors.base import ACTOR_LIKES, ACTOR_UNLIKES, Batch
from detectors.config import ConfigError, SwarmConfig
from detectors.swarm import GATE_COOLDOWN_SECONDS, SwarmDetector, parse_reports
from detectors.windows import ADDED, DUPLICATE, WindowCounts
from schemas.records import LikeEvent


def lua_settings_read() -> int:
    """How many settings swarm.lua reads after the namespace (one ``arg()`` call each)."""
    text = resources.files("detectors").joinpath("swarm.lua").read_text("utf-8")
    return len(re.findall(r"(?<!function )\barg\(\)", text))


def test_settings_match_what_the_script_reads() -> None:
    settings = SwarmDetector(SwarmConfig()).settings()
    assert len(settings) == lua_settings_read()
    assert ACTOR_LIKES in settings  # the activity window the script counts likes in


def test_settings_follow_the_config() -> None:
    detector = SwarmDetector(SwarmConfig(lockstep_min_size=33, ring_min_share=0.7))
    assert 33 in detector.settings()
    assert 0.7 in detector.settings()


def like(n: int, actor: str = "u1", ts: float = 100.0) -> LikeEvent:
    return LikeEvent(f"e{n}", "like", actor, f"p{n}", "a1", ts)


def reply_row(
    index: int, gid: str, kind: str, members: list[str], density: float = 0.8, bursts: int = 0
) -> list[Any]:
    return [
        index,
        gid.encode(),
        kind.encode(),
        len(members),
        f"{density:.6f}".encode(),
        4,
        b"50.000000",
        b"160.000000",
        len(members),
        len(members) * 2,
        bursts,
        len(members),
        *(m.encode() for m in members),
    ]


def test_reply_rows_become_group_findings() -> None:
    likes = [like(1, ts=100.0), like(2, ts=150.0)]
    farm = [f"f{i:02d}" for i in range(16)]
    ring = [f"r{i}" for i in range(7)]
    flat = reply_row(2, "l-abc", "l", farm) + reply_row(1, "r-def", "r", ring, density=0.9)
    lockstep, mutual = parse_reports(flat, likes, SwarmConfig())
    assert (lockstep.subject_kind, lockstep.subject_id) == ("group", "l-abc")
    assert lockstep.accounts == tuple(farm)
    assert lockstep.trigger_event_id == "e2" and lockstep.event_time == 150.0
    assert (lockstep.window_start, lockstep.window_end) == (50.0, 160.0)
    assert lockstep.evidence["pattern"] == "lockstep"
    assert lockstep.evidence["size"] == 16 and lockstep.evidence["posts"] == 4
    assert lockstep.evidence["span_seconds"] == 110.0
    assert lockstep.cooldown_seconds == GATE_COOLDOWN_SECONDS
    assert mutual.evidence["pattern"] == "ring" and mutual.subject_id == "r-def"
    assert mutual.accounts == tuple(ring) and mutual.trigger_event_id == "e1"


def test_score_is_one_at_the_thresholds_and_grows_with_size_and_density() -> None:
    config = SwarmConfig(lockstep_min_size=16, lockstep_min_density=0.8)
    likes = [like(1)]
    members = [f"f{i:02d}" for i in range(16)]
    (at_threshold,) = parse_reports(reply_row(1, "l-1", "l", members, 0.8), likes, config)
    assert at_threshold.score == pytest.approx(1.0)
    bigger = members + [f"g{i:02d}" for i in range(48)]
    (larger,) = parse_reports(reply_row(1, "l-1", "l", bigger, 0.8), likes, config)
    (denser,) = parse_reports(reply_row(1, "l-1", "l", members, 1.0), likes, config)
    assert larger.score == pytest.approx(2.0)
    assert denser.score > at_threshold.score
    # A group founded on a burst has few edges yet: the burst stands in for density.
    (burst,) = parse_reports(reply_row(1, "l-1", "l", bigger, 0.1, bursts=1), likes, config)
    assert burst.score == pytest.approx(2.0) and burst.evidence["bursts"] == 1


def test_window_covers_the_trigger_even_when_evidence_is_older() -> None:
    (finding,) = parse_reports(
        reply_row(1, "l-1", "l", ["a", "b", "c"]), [like(1, ts=500.0)], SwarmConfig()
    )
    assert finding.window_start == 50.0 and finding.window_end == 500.0


class NoRedis:
    """A state that fails the test if the detector touches Redis."""

    namespace = "unused"

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"Redis touched ({name}) for a batch with no like")


def test_a_batch_without_likes_does_not_call_redis() -> None:
    # (Redelivered likes do go to the script: it re-reports the groups they triggered.)
    events = [
        LikeEvent("e1", "unlike", "u1", "p1", "a1", 100.0),
        LikeEvent("e2", "unlike", "u1", "p2", "a1", 101.0),
    ]
    windows = {
        ACTOR_LIKES: [None, None],
        ACTOR_UNLIKES: [WindowCounts(ADDED, (1,)), WindowCounts(DUPLICATE, (1,))],
    }
    batch = Batch(events, windows, NoRedis())  # type: ignore[arg-type]
    assert SwarmDetector(SwarmConfig()).detect(batch) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"lockstep_min_density": 1.5},
        {"ring_min_share": -0.1},
        {"ring_min_size": 2},
        {"popularity_offset": 1.0},
        {"sync_weighting": 2.0},
        {"max_candidates": 10, "lockstep_min_size": 15},
    ],
)
def test_config_rejects_unusable_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SwarmConfig(**bad)


def test_doctests() -> None:
    result = doctest.testmod(swarm)
    assert result.attempted > 0 and result.failed == 0


class Recorder:
    """A state whose script records what the detector sends instead of running it."""

    namespace = "ns"

    def __init__(self) -> None:
        self.args: list[Any] = []
        self.client = self

    def register_script(self, _text: str) -> Any:
        def script(keys: list[str], args: list[Any], client: Any) -> list[Any]:
            self.args = args
            return []

        return script

    def timed(self, _name: str) -> Any:
        return contextlib.nullcontext()


def test_each_like_goes_with_flags_that_do_not_depend_on_the_batch() -> None:
    events = [
        LikeEvent("e1", "like", "u1", "p1", "a1", 100.0, dwell_ms=500),
        LikeEvent("e2", "unlike", "u1", "p1", "a1", 101.0),
        LikeEvent("e3", "like", "u2", "p1", "a1", 102.0, dwell_ms=9000),
        LikeEvent("e4", "like", "u3", "p1", "a1", 103.0),
    ]
    windows = {
        ACTOR_LIKES: [
            WindowCounts(ADDED, (1,)),
            None,
            WindowCounts(DUPLICATE, (1,)),
            WindowCounts(ADDED, (1,)),
        ],
        ACTOR_UNLIKES: [None, WindowCounts(ADDED, (1,)), None, None],
    }
    state = Recorder()
    SwarmDetector(SwarmConfig()).detect(Batch(events, windows, state))  # type: ignore[arg-type]
    flat = json.loads(state.args[-1])
    rows = [flat[k : k + 6] for k in range(0, len(flat), 6)]
    assert [row[0] for row in rows] == ["e1", "e3", "e4"]
    flags = {row[0]: row[5] for row in rows}
    # Quick: dwell under quick_dwell_ms. Cap check: by a hash of the event id alone. Nothing
    # depends on the window counts (a redelivered like goes as a fresh one does).
    assert flags["e1"] & swarm.FLAG_QUICK and not flags["e3"] & swarm.FLAG_QUICK
    assert not flags["e4"] & swarm.FLAG_QUICK  # no dwell: not quick
    for event_id, value in flags.items():
        assert value & ~(swarm.FLAG_QUICK | swarm.FLAG_CHECK_CAPS) == 0
        sampled = zlib.crc32(event_id.encode()) % 16 == 0
        assert bool(value & swarm.FLAG_CHECK_CAPS) == sampled
