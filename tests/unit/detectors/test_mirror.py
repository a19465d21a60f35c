"""ScoreMirror: the in-process copy of window keys that the windows script keeps honest."""

from __future__ import annotations

from detectors.mirror import ScoreMirror


def test_trim_applies_retention_from_the_newest_entry_then_the_cap() -> None:
    mirror = ScoreMirror(retention=100, max_members=3, max_keys=10)
    mirror.load("a", [0.0, 50.0, 120.0, 130.0, 140.0, 150.0])
    mirror.trim(["a"])
    # Retention keeps [50, 150]; the cap then keeps the newest three.
    assert mirror.expected("a") == (3, 150.0, 130.0)
    assert mirror.counts("a", 150.0, (15, 1000)) == (2, 3)


def test_retention_bound_is_inclusive_as_in_redis() -> None:
    mirror = ScoreMirror(retention=100, max_members=0, max_keys=10)
    mirror.load("a", [50.0, 150.0])
    mirror.trim(["a"])
    assert mirror.expected("a") == (2, 150.0, 50.0)  # 50 is exactly at the bound: kept


def test_least_recently_used_keys_go_first_and_only_at_trim() -> None:
    mirror = ScoreMirror(retention=100, max_members=0, max_keys=2)
    for key in "abc":
        mirror.load(key, [1.0])
    assert len(mirror) == 3  # nothing evicted while a batch may still count
    mirror.touch("a")
    mirror.trim([])
    assert mirror.expected("b") == (-1, 0.0, 0.0)
    assert mirror.expected("a") == (1, 1.0, 1.0) and mirror.expected("c") == (1, 1.0, 1.0)


def test_clear_forgets_everything() -> None:
    mirror = ScoreMirror(retention=100, max_members=0, max_keys=2)
    mirror.load("a", [1.0])
    mirror.clear()
    assert mirror.expected("a") == (-1, 0.0, 0.0) and len(mirror) == 0


def test_a_keys_ttl_is_due_once_per_refresh_interval_and_again_after_it_is_forgotten() -> None:
    mirror = ScoreMirror(retention=100, max_members=0, max_keys=1, ttl_refresh_seconds=60)
    assert mirror.ttl_due("a", now=0.0)
    assert not mirror.ttl_due("a", now=59.0)
    assert mirror.ttl_due("a", now=60.0)
    mirror.load("a", [1.0])
    mirror.load("b", [1.0])
    mirror.trim([])  # "a" is evicted, and with it when its TTL was renewed
    assert mirror.ttl_due("a", now=61.0)
