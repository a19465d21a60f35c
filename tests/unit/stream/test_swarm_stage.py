"""The swarm stage's feed: forwarded records in, likes in replay's order out, acks when done."""

from __future__ import annotations

import pytest

from detectors.windows import ADDED, WindowCounts
from schemas.records import LikeEvent
from stream.merge import EventTimeMerge
from stream.swarm_stage import Chunk, SwarmFeed, decode_chunk, encode_chunk, encode_likes


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def chunk(partition: int, likes: list[tuple[int, float]], highwater: int | None) -> Chunk:
    rows = [
        (offset, LikeEvent(f"p{partition}o{offset}", "like", "u", "x", "a", ts, dwell_ms=400), None)
        for offset, ts in likes
    ]
    end = likes[-1][0] + 1 if likes else 0
    newest = likes[-1][1] if likes else None
    return decode_chunk(encode_chunk(partition, end, newest, highwater, encode_likes(rows)))


def feed(partitions: int = 2, clock: Clock | None = None) -> SwarmFeed[str]:
    merge = EventTimeMerge[object](idle_seconds=1.0, max_held=1000)
    return SwarmFeed[str](merge, partitions, 100, clock=clock or Clock())  # type: ignore[arg-type]


def ids(released: list) -> list[str]:
    return [like.event_id for _, like in released]


def test_a_chunk_round_trips_with_every_field_the_stage_needs() -> None:
    like = LikeEvent("e1", "like", "u1", "p1", "a1", 12.25, actor_created_at=3.5, dwell_ms=900)
    counts = WindowCounts(ADDED, (1, 3, 8))
    raw = encode_likes([(7, like, counts), (9, like, None)])
    got = decode_chunk(encode_chunk(3, 10, 12.25, 10, raw))
    assert (got.partition, got.next_offset, got.newest, got.highwater) == (3, 10, 12.25, 10)
    counted, uncounted = got.likes
    assert (counted.offset, uncounted.offset) == (7, 9)
    assert counted.event() == like == uncounted.event()
    assert counted.window() == counts
    assert uncounted.window() is None


def test_a_like_forwarded_by_an_older_worker_decodes_as_uncounted() -> None:
    # Before the stage ran new_account_spike and fan_imbalance, a like was seven fields.
    raw = encode_chunk(0, 1, 5.0, 1, b'[[0,5.0,"e1","u1","p1","a1",null]]')
    [like] = decode_chunk(raw).likes
    assert like.event() == LikeEvent("e1", "like", "u1", "p1", "a1", 5.0)
    assert like.window() is None


@pytest.mark.parametrize("raw", [b"", b"[]", b'{"partition": "x"}', b"\xff"])
def test_a_record_that_is_no_chunk_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a swarm-stage record"):
        decode_chunk(raw)


def test_likes_of_two_workers_come_out_in_event_time_order_whatever_the_arrival_order() -> None:
    out = feed()
    # Partition 1's worker is behind: its likes arrive after partition 0's later ones.
    assert out.add("r0", chunk(0, [(0, 1.0), (1, 4.0), (2, 6.0)], highwater=9)) == []
    assert ids(out.release()) == []  # partition 1 has said nothing: it may hold older likes
    assert out.add("r1", chunk(1, [(0, 2.0), (1, 5.0)], highwater=7)) == []
    first = out.release()
    assert ids(first) == ["p0o0", "p1o0", "p0o1", "p1o1"]  # up to partition 1's watermark
    # r1 is through, but r0 (read before it) still has a like held: acks go in offset order.
    assert out.done(first) == []
    assert out.add("r2", chunk(1, [(2, 7.0)], highwater=7)) == []
    second = out.release()
    assert ids(second) == ["p0o2"]  # partition 0 is behind its high watermark: 7.0 waits
    assert out.done(second) == ["r0", "r1"]


def test_a_chunk_without_likes_moves_its_partition_on_and_is_acked_in_its_turn() -> None:
    out = feed()
    assert out.add("r0", chunk(0, [(0, 5.0)], highwater=9)) == []
    # Partition 1 had only unlikes up to 6.0 and is behind: partition 0 may go up to 6.0.
    empty = decode_chunk(encode_chunk(1, 4, 6.0, 10, encode_likes([])))
    assert out.add("r1", empty) == []  # nothing to wait for, but r0 before it is not done
    released = out.release()
    assert ids(released) == ["p0o0"]
    assert out.done(released) == ["r0", "r1"]
    lone = decode_chunk(encode_chunk(1, 5, 6.5, 10, encode_likes([])))
    assert out.add("r2", lone) == ["r2"]  # nothing before it left: acked at once


def test_silence_counts_only_outside_the_time_spent_in_the_stage() -> None:
    clock = Clock()
    out = feed(clock=clock)
    out.add("r0", chunk(0, [(0, 5.0)], highwater=9))
    clock.now = 5.0
    out.now.waited(4.5)  # the stage was busy: partition 1 has been silent 0.5 s, not 5
    assert ids(out.release()) == []
    clock.now = 5.6
    assert ids(out.release()) == ["p0o0"]


def test_a_reset_forgets_what_is_held_and_expects_every_partition_again() -> None:
    out = feed()
    out.add("r0", chunk(0, [(0, 1.0)], highwater=5))
    out.reset()
    assert out.merge.held == 0
    assert out.merge.partitions == frozenset({0, 1})
    out.add("r0", chunk(0, [(0, 1.0)], highwater=5))
    assert ids(out.release()) == []  # partition 1 holds it back again


def test_a_like_forwarded_twice_goes_through_twice_and_each_record_completes() -> None:
    # A worker that crashed before acking forwards its batch again; the stage passes both on
    # (the detector takes a like it has seen as a no-op that re-reports its groups).
    out = feed(partitions=1)
    out.add("first", chunk(0, [(0, 1.0)], highwater=1))
    out.add("again", chunk(0, [(0, 1.0)], highwater=1))
    released = out.release()
    assert ids(released) == ["p0o0", "p0o0"]
    assert out.done(released) == ["first", "again"]


def test_a_caught_up_report_counts_only_while_it_is_fresh() -> None:
    # A worker reported its partition caught up, then died (or the report is read back after
    # a rebalance): past caught_up_seconds, the partition holds the others back again.
    clock, wall = Clock(), Clock()
    wall.now = 1000.0
    merge = EventTimeMerge[object](idle_seconds=30.0, max_held=1000, caught_up_seconds=2.0)
    out = SwarmFeed[str](merge, 2, 100, clock=clock, wall_clock=wall)  # type: ignore[arg-type]
    out.add("r0", chunk(0, [(0, 5.0)], highwater=9))
    caught_up = encode_chunk(1, 4, 3.0, 4, encode_likes([]), sent_at=1000.0)
    out.add("r1", decode_chunk(caught_up))
    assert ids(out.release()) == ["p0o0"]
    out.add("r2", chunk(0, [(1, 6.0)], highwater=9))
    clock.now, wall.now = 2.5, 1002.5
    assert ids(out.release()) == []  # the report is 2.5 s old
    stale = encode_chunk(1, 4, 3.0, 4, encode_likes([]), sent_at=990.0)  # read back late
    out.add("r3", decode_chunk(stale))
    assert ids(out.release()) == []
    fresh = encode_chunk(1, 4, 3.0, 4, encode_likes([]), sent_at=1002.4)
    out.add("r4", decode_chunk(fresh))
    assert ids(out.release()) == ["p0o1"]


def test_the_brokers_high_watermark_outranks_a_dead_workers_last_report() -> None:
    # Partition 1's worker reported it caught up at offset 4, then died; records 4 and 5 came
    # after. The broker's high watermark says so, and partition 1 holds partition 0 back.
    clock, wall = Clock(), Clock()
    wall.now = 1000.0
    merge = EventTimeMerge[object](idle_seconds=30.0, max_held=1000, caught_up_seconds=2.0)
    out = SwarmFeed[str](merge, 2, 100, clock=clock, wall_clock=wall)  # type: ignore[arg-type]
    caught_up = encode_chunk(1, 4, 3.0, 4, encode_likes([]), sent_at=1000.0)
    out.add("r0", decode_chunk(caught_up))
    out.add("r1", chunk(0, [(0, 5.0)], highwater=9))
    out.observe_source({0: 9, 1: 6}, asked_at=1000.1)
    assert ids(out.release()) == []
    # An older, lower view (the dead worker's report read back) does not undo it.
    out.add("r2", decode_chunk(encode_chunk(1, 4, 3.0, 4, encode_likes([]), sent_at=1000.2)))
    assert ids(out.release()) == []
    # The partition's new owner forwards records 4 and 5: partition 0's like may go.
    out.add("r3", chunk(1, [(4, 4.0), (5, 6.5)], highwater=6))
    assert ids(out.release()) == ["p1o4", "p0o0"]
