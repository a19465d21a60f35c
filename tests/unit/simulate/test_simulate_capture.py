"""The capture file: contract format, order, ids, snapshots, like/unlike consistency."""

from __future__ import annotations

import importlib.util
from collections import defaultdict

import pytest

from stream.simulate.checks import (
    LoadedScenario,
    contract_problems,
    like_counts,
    like_state_problems,
)


def test_every_line_follows_the_contract(synthetic_run: LoadedScenario) -> None:
    problems = {
        event["event_id"]: contract_problems(event)
        for event in synthetic_run.events
        if contract_problems(event)
    }
    assert problems == {}


@pytest.mark.skipif(
    importlib.util.find_spec("schemas.validate") is None, reason="schemas.validate not present"
)
def test_every_line_passes_the_project_validator(synthetic_run: LoadedScenario) -> None:
    from schemas.validate import parse_event

    for event in synthetic_run.events:
        parse_event(event)


def test_events_are_sorted_by_time_with_unique_seeded_ids(
    synthetic_run: LoadedScenario, seed: str
) -> None:
    times = [event["ts"] for event in synthetic_run.events]
    ids = [event["event_id"] for event in synthetic_run.events]
    assert times == sorted(times)
    assert len(set(ids)) == len(ids)
    assert all(event_id.startswith(f"e-{seed}-") for event_id in ids)


def test_events_lie_inside_the_scenario_span(synthetic_run: LoadedScenario) -> None:
    start, end = synthetic_run.truth["start"], synthetic_run.truth["end"]
    assert all(start <= event["ts"] <= end for event in synthetic_run.events)


def test_all_event_types_occur(synthetic_run: LoadedScenario) -> None:
    kinds = {event["type"] for event in synthetic_run.events}
    assert kinds == {"like", "unlike", "account", "post"}


def test_gzip_header_has_no_mtime_or_name(synthetic_run: LoadedScenario) -> None:
    header = synthetic_run.capture_bytes[:10]
    assert header[:2] == b"\x1f\x8b"
    assert header[4:8] == b"\x00\x00\x00\x00"
    assert header[3] & 0x08 == 0  # no FNAME field


def test_likes_and_unlikes_alternate_per_actor_and_post(synthetic_run: LoadedScenario) -> None:
    assert like_state_problems(synthetic_run.events) == []


def test_accounts_have_a_snapshot_before_they_appear(synthetic_run: LoadedScenario) -> None:
    seen: set[str] = set()
    missing: list[str] = []
    for event in synthetic_run.events:
        if event["type"] == "account":
            seen.add(event["account_id"])
            continue
        involved = [event["author_id"]]
        if event["type"] != "post":
            involved.append(event["actor_id"])
        missing.extend(account for account in involved if account not in seen)
    assert missing == []


def test_account_snapshots_precede_activity_and_creation_precedes_snapshots(
    synthetic_run: LoadedScenario,
) -> None:
    for event in synthetic_run.events:
        if event["type"] == "account":
            assert event["created_at"] <= event["ts"]
        if event["type"] in ("like", "unlike"):
            assert event["actor_created_at"] <= event["ts"]


def test_post_snapshots_never_show_fewer_views_than_likes(synthetic_run: LoadedScenario) -> None:
    likes: dict[str, int] = defaultdict(int)
    for event in synthetic_run.events:
        if event["type"] == "like":
            likes[event["post_id"]] += 1
        elif event["type"] == "post":
            assert event["views"] >= likes[event["post_id"]]
            assert event["created_at"] <= event["ts"]


def test_post_counters_never_decrease(synthetic_run: LoadedScenario) -> None:
    previous: dict[str, tuple[int, int]] = {}
    for event in synthetic_run.events:
        if event["type"] != "post":
            continue
        counters = (event["views"], event["completions"])
        before = previous.get(event["post_id"], (0, 0))
        assert counters[0] >= before[0] and counters[1] >= before[1]
        previous[event["post_id"]] = counters


def test_every_liked_post_has_snapshots(synthetic_run: LoadedScenario) -> None:
    snapshotted = {event["post_id"] for event in synthetic_run.events if event["type"] == "post"}
    assert set(like_counts(synthetic_run.events)) <= snapshotted
