"""Fixed per-window like-count threshold, on hand-made event lists."""

from __future__ import annotations

from typing import Any

import pytest

from detectors.reference.threshold import ThresholdHit, run_threshold

Event = dict[str, Any]


def likes(actor: str, *times: float, kind: str = "like") -> list[Event]:
    return [
        {
            "event_id": f"{actor}-{kind}-{n}-{t}",
            "type": kind,
            "actor_id": actor,
            "post_id": f"p{n}",
            "author_id": "x",
            "ts": float(t),
        }
        for n, t in enumerate(times)
    ]


def test_defaults_30_likes_in_600_seconds() -> None:
    burst = likes("bot", *(10.0 * i for i in range(30)))  # 30 likes within 290 s
    slow = likes("human", *(21.0 * i for i in range(60)))  # 29 per 609 s at most
    res = run_threshold(burst + slow)
    assert res.flagged == {"bot"}
    assert res.hits["bot"] == ThresholdHit("bot", 290.0, -310.0, 30, 30)
    assert res.first_detection == {"bot": 290.0}
    assert res.scores == {"bot": 30.0}
    assert (res.window, res.threshold, res.mode) == (600.0, 30, "sliding")


def test_window_is_half_open_likes_exactly_w_apart_do_not_share_it() -> None:
    assert run_threshold(likes("a", 0, 600), window=600, threshold=2).flagged == frozenset()
    res = run_threshold(likes("a", 0, 599.5), window=600, threshold=2)
    assert res.hits["a"].first_detected == 599.5


def test_first_crossing_and_max_count_come_from_different_bursts() -> None:
    # Burst 1 (t=0..40) crosses T=3 at its third like; burst 2 (t=1000..1004) holds 5 likes.
    ev = likes("a", 0, 20, 40, 1000, 1001, 1002, 1003, 1004)
    res = run_threshold(ev, window=60, threshold=3)
    hit = res.hits["a"]
    assert hit.first_detected == 40.0
    assert hit.window_start == -20.0
    assert hit.max_count == 5
    assert hit.total_likes == 8


def test_input_order_does_not_matter() -> None:
    ev = likes("a", 50, 10, 30, 20, 40)
    res = run_threshold(ev[::-1], window=25, threshold=3)
    assert res.hits["a"].first_detected == 30.0
    assert res.hits["a"].max_count == 3


def test_equal_timestamps_count_together() -> None:
    res = run_threshold(likes("a", 5, 5, 5), window=1, threshold=3)
    assert res.hits["a"].first_detected == 5.0
    assert res.hits["a"].max_count == 3


def test_unlikes_neither_count_nor_take_likes_back() -> None:
    ev = likes("a", 1, 2) + likes("a", 3, 4, 5, kind="unlike")
    assert run_threshold(ev, window=60, threshold=3).flagged == frozenset()
    ev.append({"event_id": "third", "type": "like", "actor_id": "a", "post_id": "p9", "ts": 6.0})
    res = run_threshold(ev, window=60, threshold=3)
    assert res.hits["a"].first_detected == 6.0
    assert res.hits["a"].max_count == 3


def test_redelivered_events_count_once_and_other_records_are_ignored() -> None:
    ev = likes("a", 1, 2)
    ev += [dict(ev[0]), {"event_id": "s", "type": "account", "account_id": "a", "ts": 3.0}]
    ev += [{"type": "like", "actor_id": "a", "post_id": "p7", "ts": 4.0}]  # no event_id: kept
    res = run_threshold(ev, window=60, threshold=3)
    assert res.hits["a"].first_detected == 4.0
    assert res.hits["a"].total_likes == 3


def test_accounts_are_independent() -> None:
    ev = likes("a", 0, 1) + likes("b", 2) + likes("c", 3, 4, 5)
    res = run_threshold(ev, window=10, threshold=3)
    assert res.flagged == {"c"}
    assert list(res.hits) == ["c"]


def test_tumbling_windows_are_epoch_aligned() -> None:
    straddling = likes("a", 590, 595, 605, 610)  # 4 likes in 20 s, cut at t = 600
    inside = likes("b", 1210, 1220, 1230)
    res = run_threshold(straddling + inside, window=600, threshold=3, mode="tumbling")
    assert res.flagged == {"b"}
    assert res.hits["b"] == ThresholdHit("b", 1230.0, 1200.0, 3, 3)
    sliding = run_threshold(straddling + inside, window=600, threshold=3)
    assert sliding.flagged == {"a", "b"}
    assert sliding.hits["a"].max_count == 4


def test_tumbling_first_crossing_and_max() -> None:
    ev = likes("a", 0, 1, 2, 100, 101, 102, 103)
    hit = run_threshold(ev, window=100, threshold=3, mode="tumbling").hits["a"]
    assert (hit.first_detected, hit.window_start, hit.max_count) == (2.0, 0.0, 4)


def test_empty_input_and_bad_parameters() -> None:
    assert run_threshold([]).flagged == frozenset()
    with pytest.raises(ValueError):
        run_threshold([], window=0)
    with pytest.raises(ValueError):
        run_threshold([], threshold=0)
    with pytest.raises(ValueError):
        run_threshold([], mode="hopping")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="actor_id"):
        run_threshold([{"type": "like", "post_id": "p", "ts": 1.0}])
