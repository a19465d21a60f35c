"""The event-time merge: replay's order from interleaved partitions, and what may break it."""

from __future__ import annotations

import doctest
import random

import pytest

from stream import merge as merge_module
from stream.merge import EventTimeMerge, event_time


def new(partitions: list[int], idle: float = 1.0, cap: int = 1000) -> EventTimeMerge[str]:
    merge = EventTimeMerge[str](idle_seconds=idle, max_held=cap)
    merge.assign(partitions, now=0.0)
    return merge


def test_docstring_examples() -> None:
    result = doctest.testmod(merge_module)
    assert result.attempted > 0 and result.failed == 0


def test_interleaved_partitions_come_out_in_event_time_order() -> None:
    # Four partitions, each in event-time order on its own, delivered in random chunks (as a
    # consumer fetches them): the merge must give the global (ts, partition, offset) order.
    rng = random.Random(3)
    records = {p: sorted(rng.uniform(0, 100) for _ in range(200)) for p in range(4)}
    merge = new(list(records))
    cursors = dict.fromkeys(records, 0)
    out: list[str] = []
    while any(cursors[p] < len(records[p]) for p in records):
        p = rng.choice([p for p in records if cursors[p] < len(records[p])])
        for _ in range(rng.randint(1, 30)):
            if cursors[p] == len(records[p]):
                break
            offset = cursors[p]
            merge.add(p, offset, records[p][offset], f"{p}:{offset}", now=0.0)
            cursors[p] += 1
        out += merge.release(now=0.0)
        assert merge.forced == 0
    for p, ts in records.items():  # the end: every partition caught up with the broker
        merge.observe_highwater(p, len(ts), now=0.0)
    out += merge.release(now=0.0)
    expected = sorted((ts, p, o) for p, tss in records.items() for o, ts in enumerate(tss))
    assert out == [f"{p}:{o}" for _, p, o in expected]
    assert merge.held == 0 and merge.late == 0


def test_nothing_goes_before_a_partition_that_has_delivered_nothing() -> None:
    merge = new([0, 1])
    merge.add(0, 0, 5.0, "a", now=0.0)
    assert merge.release(now=0.5) == []
    merge.add(1, 0, 7.0, "b", now=0.6)
    assert merge.release(now=0.6) == ["a"]


def test_ties_go_by_partition_then_offset() -> None:
    merge = new([0, 1])
    merge.add(1, 4, 5.0, "1:4", now=0.0)
    merge.add(1, 3, 5.0, "1:3", now=0.0)
    merge.add(0, 9, 5.0, "0:9", now=0.0)
    assert merge.release(now=0.0) == ["0:9", "1:3", "1:4"]


def test_a_caught_up_partition_holds_nothing_back() -> None:
    merge = new([0, 1])
    merge.add(0, 0, 5.0, "a", now=0.0)
    merge.add(0, 1, 9.0, "b", now=0.0)
    merge.add(1, 0, 6.0, "c", now=0.0)
    merge.observe_highwater(1, 3, now=0.0)  # two more records of partition 1 are coming
    assert merge.release(now=0.1) == ["a", "c"]
    merge.add(1, 1, 7.0, "d", now=0.1)
    merge.add(1, 2, 8.0, "e", now=0.1)  # offset 2 is the last one: caught up
    assert merge.release(now=0.1) == ["d", "e", "b"]


def test_a_silent_partition_stops_holding_back_after_idle_seconds() -> None:
    merge = new([0, 1], idle=0.5)
    merge.add(0, 0, 5.0, "a", now=0.0)
    assert merge.release(now=0.4) == []
    assert merge.release(now=0.5) == ["a"]


def test_a_rising_high_watermark_makes_a_silent_partition_hold_back_again() -> None:
    merge = new([0, 1], idle=0.5)
    merge.add(0, 0, 5.0, "a", now=1.0)
    merge.observe_highwater(1, 10, now=1.0)  # records of partition 1 are on their way
    assert merge.release(now=1.4) == []
    merge.observe_highwater(1, 10, now=1.5)  # no rise: silence counts from 1.0
    assert merge.release(now=1.5) == ["a"]


def test_an_idle_partition_that_wakes_up_holds_back_again() -> None:
    merge = new([0, 1], idle=0.5)
    merge.add(1, 0, 1.0, "early", now=0.0)
    merge.observe_highwater(1, 1, now=0.0)
    merge.add(0, 0, 5.0, "a", now=0.0)
    assert merge.release(now=0.1) == ["early", "a"]
    merge.add(1, 1, 6.0, "b", now=0.2)
    merge.observe_highwater(1, 5, now=0.2)
    merge.add(0, 1, 9.0, "c", now=0.2)
    assert merge.release(now=0.2) == ["b"]  # partition 1 has records up to offset 4 coming


def test_late_records_are_counted() -> None:
    merge = new([0, 1], idle=0.5)
    merge.add(0, 0, 5.0, "a", now=0.0)
    assert merge.release(now=1.0) == ["a"]  # partition 1 silent: released without it
    merge.add(1, 0, 4.0, "old", now=1.1)
    assert merge.late == 1
    assert merge.release(now=1.1) == ["old"]


def test_undecodable_records_go_first_and_at_once() -> None:
    merge = new([0, 1])
    merge.add(0, 0, 5.0, "a", now=0.0)
    merge.add(0, 1, None, "bad", now=0.0)
    assert merge.release(now=0.0) == ["bad"]
    assert merge.held == 1


def test_cap_releases_the_oldest_and_counts_them() -> None:
    merge = new([0, 1], cap=3)
    for offset in range(5):  # partition 1 is behind: nothing may go by the watermark
        merge.add(0, offset, 10.0 + offset, str(offset), now=0.0)
    assert merge.release(now=0.0) == ["0", "1"]
    assert merge.forced == 2 and merge.held == 3


def test_limit_bounds_a_release_and_the_rest_stays() -> None:
    merge = new([0])
    for offset in range(5):
        merge.add(0, offset, float(offset), str(offset), now=0.0)
    merge.observe_highwater(0, 5, now=0.0)
    assert merge.release(now=0.0, limit=2) == ["0", "1"]
    assert merge.release(now=0.0) == ["2", "3", "4"]


def test_revoked_partitions_lose_their_held_records_and_stop_holding_back() -> None:
    merge = new([0, 1, 2])
    merge.add(0, 0, 5.0, "a", now=0.0)
    merge.add(1, 0, 3.0, "b", now=0.0)
    merge.add(1, 1, None, "bad", now=0.0)
    assert merge.release(now=0.0) == ["bad"]
    merge.add(1, 2, None, "bad2", now=0.0)
    # Partition 2 has delivered nothing, so nothing dated goes; then 1 and 2 move away.
    assert merge.assign([0], now=0.1) == 2
    assert merge.dropped == 2 and merge.partitions == frozenset({0})
    assert merge.release(now=0.1) == ["a"]


def test_a_record_of_an_unknown_partition_assigns_it() -> None:
    merge = new([0])
    merge.add(3, 0, 1.0, "x", now=0.0)
    assert 3 in merge.partitions


def test_cap_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EventTimeMerge[str](idle_seconds=1.0, max_held=0)


@pytest.mark.parametrize(
    ("raw", "ts"),
    [
        (b'{"event_id":"e","type":"like","ts":1793491200}', 1793491200.0),
        (b'{"ts":"2026-11-01T01:00:00+01:00"}', 1793491200.0),
        (b'{"ts":1e99}', None),  # out of the validator's range
        (b'{"ts":"yesterday"}', None),
        (b'{"ts":null}', None),
        (b"\xff\xfe", None),
        (b"", None),
        (b'"just a string"', None),
    ],
)
def test_event_time_reads_only_the_timestamp(raw: bytes, ts: float | None) -> None:
    assert event_time(raw) == ts


def test_a_partition_behind_its_high_watermark_holds_back_past_idle_seconds() -> None:
    # Partition 1 has delivered offset 0 and the broker has offsets up to 9: however uneven
    # the consumer's delivery, partition 0's newer record waits for partition 1's.
    merge = EventTimeMerge[str](idle_seconds=0.5, behind_idle_seconds=5.0, max_held=1000)
    merge.assign([0, 1], now=0.0)
    merge.add(1, 0, 1.0, "old", now=0.0)
    merge.observe_highwater(1, 10, now=0.0)
    merge.add(0, 0, 5.0, "a", now=0.0)
    merge.observe_highwater(0, 1, now=0.0)
    assert merge.release(now=0.0) == ["old"]
    assert merge.release(now=4.9) == []  # silent far past idle_seconds, but behind
    merge.add(1, 1, 2.0, "b", now=4.9)
    assert merge.release(now=4.9) == ["b"]
    assert merge.release(now=9.8) == []  # the silence counts again from its last record
    assert merge.release(now=9.9) == ["a"]  # given up on after behind_idle_seconds
    assert merge.late == 0


def test_behind_idle_seconds_defaults_to_ten_times_idle_seconds() -> None:
    assert EventTimeMerge[str](idle_seconds=0.3, max_held=1).behind_idle_seconds == 3.0
