"""Redis sliding windows: event-time counts, idempotency, lateness, bounded size."""

from __future__ import annotations

import random

import pytest

from detectors.config import WindowsConfig
from detectors.state import RedisState
from detectors.windows import ADDED, DUPLICATE, LATE, WindowCounts, WindowSpec, WindowStore
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


def mirrored_and_plain(state: RedisState, **config: int) -> WindowStore:
    """Two families over the same keys: one counted in process, one counted by Redis."""
    # Retention just over the longest window and a small cap: both bite inside the windows.
    settings = {"retention_seconds": 700, "max_members": 12, "key_ttl_seconds": 7200} | config
    specs = [
        WindowSpec("plain", lambda e: e.actor_id, (60, 600)),
        WindowSpec("mirrored", lambda e: e.actor_id, (60, 600), mirrored=True),
    ]
    return WindowStore(state, WindowsConfig(**settings), specs)  # type: ignore[arg-type]


def messy_batches(seed: int, n_batches: int = 30) -> list[list[LikeEvent]]:
    """Batches with out-of-order, late, redelivered and dense events over a few actors."""
    rng = random.Random(seed)
    sent: list[LikeEvent] = []
    batches = []
    clock = T0
    for b in range(n_batches):
        batch = []
        for n in range(rng.randint(1, 60)):
            clock += rng.choice([0.001, 0.5, 3.0, 10.0, 59.999, 60.0])
            ts = clock - rng.choice([0.0, 0.0, 0.0, 30.0, 650.0, 2000.0])  # some out of order
            batch.append(like(b * 1000 + n, round(ts, 3), actor=rng.choice("ab")))
        if sent and rng.random() < 0.3:
            batch += rng.sample(sent, min(len(sent), 5))  # redelivered
        sent += batch
        batches.append(batch)
    return batches


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("max_members", [12, 10_000], ids=["capped", "uncapped"])
def test_mirrored_counts_equal_redis_counts(state: RedisState, seed: int, max_members: int) -> None:
    windows = mirrored_and_plain(state, max_members=max_members)
    for batch in messy_batches(seed):
        got = windows.update(batch)
        assert got["mirrored"] == got["plain"]
        assert {w.status for w in got["mirrored"] if w} >= {ADDED}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("max_members", [12, 10_000], ids=["capped", "uncapped"])
def test_mirrored_keys_are_trimmed_and_capped_as_plain_keys_are(
    state: RedisState, seed: int, max_members: int
) -> None:
    # A key the copy matches is trimmed only when the copy's oldest entry has left the
    # retention and capped only when over the cap: Redis must still end up holding what the
    # always-trimmed plain family holds.
    windows = mirrored_and_plain(state, max_members=max_members)
    for batch in messy_batches(seed):
        windows.update(batch)
        for actor in "ab":
            plain, mirrored = (
                state.client.zrange(state.key("w", family, actor), 0, -1, withscores=True)
                for family in ("plain", "mirrored")
            )
            assert mirrored == plain
    assert windows.mirror_loads == 2


def test_a_mirrored_keys_ttl_is_renewed_when_due_not_every_batch(state: RedisState) -> None:
    windows = mirrored_and_plain(state, key_ttl_seconds=7200)
    windows.update([like(1, T0)])
    key = state.key("w", "mirrored", "a")
    assert 7000 < state.client.ttl(key) <= 7200
    state.client.expire(key, 100)
    windows.update([like(2, T0 + 1)])  # renewed a moment ago: not due yet
    assert 0 < state.client.ttl(key) <= 100
    windows.forget_mirrors()  # a reloaded copy always renews
    windows.update([like(3, T0 + 2)])
    assert 7000 < state.client.ttl(key) <= 7200


def test_mirrored_bounds_round_as_redis_does(state: RedisState) -> None:
    # The script sends bounds as "%.6f": this entry lies just inside the exact lower bound
    # (ts - 60) but on the rounded one, which is exclusive.
    windows = mirrored_and_plain(state)
    entry, ts = 1793513177.963824, 1793513237.9638238
    got = windows.update([like(1, entry), like(2, ts)])
    assert got["mirrored"] == got["plain"]
    assert got["mirrored"][1] == WindowCounts(ADDED, (1, 2))


def test_one_writer_reads_each_key_from_redis_once(state: RedisState) -> None:
    """The copy follows Redis's trimming and capping, so it never needs reading back."""
    windows = mirrored_and_plain(state)
    for batch in messy_batches(6):
        windows.update(batch)
    assert windows.mirror_loads == 2  # actors "a" and "b", on first touch


def test_a_stale_copy_is_corrected_by_redis(state: RedisState) -> None:
    """Another writer of the same keys (a rebalance, a restart) never makes a count wrong."""
    first, second = mirrored_and_plain(state), mirrored_and_plain(state)
    batches = messy_batches(4)
    for n, batch in enumerate(batches):
        # The actors move between the two "workers" now and then, each with its own copy.
        windows = first if (n // 3) % 2 == 0 else second
        got = windows.update(batch)
        assert got["mirrored"] == got["plain"]


def test_a_small_mirror_forgets_keys_and_reads_them_back(state: RedisState) -> None:
    windows = mirrored_and_plain(state, mirror_keys=1)
    for batch in messy_batches(5):
        got = windows.update(batch)
        assert got["mirrored"] == got["plain"]
    windows.forget_mirrors()
    got = windows.update([like(99_999, T0 + 10**5, actor="a")])
    assert got["mirrored"] == got["plain"]


def test_only_event_counts_can_be_mirrored() -> None:
    with pytest.raises(ValueError, match="only event counts"):
        WindowSpec("x", lambda e: e.post_id, (60,), lambda e: e.actor_id, True, mirrored=True)
