"""Redis sliding windows: event-time counts, idempotency, lateness, bounded size."""

from __future__ import annotations

import pytest

from detectors.config import WindowsConfig
from detectors.state import RedisState
from detectors.windows import ADDED, DUPLICATE, LATE, WindowSpec, WindowStore
from schemas.records import LikeEvent

pytestmark = pytest.mark.integration
T0 = 1793491200.0


def like(n: int, ts: float, actor: str = "a", post: str | None = None) -> LikeEvent:
    return LikeEvent(f"e{n}", "like", actor, post or f"p{n}", "u", ts)


def store(state: RedisState, **config: int) -> WindowStore:
    spec = WindowSpec("actor", lambda e: e.actor_id, (60, 600))
    settings = {"retention_seconds": 3600, "max_members": 100, "key_ttl_seconds": 7200} | config
    return WindowStore(state, WindowsConfig(**settings), [spec])  # type: ignore[arg-type]


def test_counts_are_taken_at_each_events_own_time(state: RedisState) -> None:
    windows = store(state)
    events = [like(n, T0 + n * 30) for n in range(5)]  # 0, 30, 60, 90, 120 s
    got = windows.update(events)["actor"]
    assert [w.counts for w in got if w] == [(1, 1), (2, 2), (2, 3), (2, 4), (2, 5)]
    # An out-of-order event counts what lies before it in event time, not arrival order.
    (late,) = windows.update([like(9, T0 + 45)])["actor"]
    assert late is not None and late.status == ADDED and late.counts == (3, 3)


def test_redelivered_events_never_count_twice(state: RedisState) -> None:
    windows = store(state)
    events = [like(n, T0 + n) for n in range(3)]
    windows.update(events)
    again = windows.update(events)["actor"]
    assert [w.status for w in again if w] == [DUPLICATE] * 3
    assert again[2] is not None and again[2].counts == (3, 3)


def test_events_older_than_retention_are_late(state: RedisState) -> None:
    windows = store(state, retention_seconds=600)
    windows.update([like(1, T0 + 5000)])
    (old,) = windows.update([like(2, T0)])["actor"]
    assert old is not None and old.status == LATE and old.counts == (0, 0)
    # ... and the newest event's windows are untouched by the late one.
    (fresh,) = windows.update([like(3, T0 + 5001)])["actor"]
    assert fresh is not None and fresh.counts == (2, 2)


def test_members_per_key_are_capped_and_keys_expire(state: RedisState) -> None:
    windows = store(state, max_members=10)
    windows.update([like(n, T0 + n) for n in range(50)])
    key = state.key("w", "actor", "a")
    assert state.client.zcard(key) == 10
    assert 0 < state.client.ttl(key) <= 7200


def test_families_apply_only_where_their_key_function_says(state: RedisState) -> None:
    posts = WindowSpec("post_likers", lambda e: e.post_id, (60,), lambda e: e.actor_id, True)
    windows = WindowStore(state, WindowsConfig(), [posts])
    got = windows.update(
        [like(1, T0, "a", "p"), like(2, T0 + 1, "b", "p"), like(3, T0 + 2, "a", "p")]
    )["post_likers"]
    # Distinct likers: the third like is actor "a" again (moved to its latest time).
    assert [w.counts for w in got if w] == [(1,), (2,), (2,)]
    assert [w.status for w in got if w] == [ADDED, ADDED, DUPLICATE]
