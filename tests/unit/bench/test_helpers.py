"""Helpers of the latency, replay and command-line modules that need no broker or Redis."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import pytest

from bench.cli import Plan, build_parser, plan_for, table_rows
from bench.latency import (
    attack_accounts,
    densest_slice,
    paced_schedule,
    publish_paced,
    rewrite_times,
    trigger_key,
)
from bench.replay import head_of, parse_summary
from bench.report import NOT_MEASURED
from schemas.records import LikeEvent, PostSnapshot
from stream.capture import Placed


def test_rewrite_times_keeps_the_age_at_the_event() -> None:
    event = LikeEvent("e1", "like", "a", "p", "u", ts=1000.0, actor_created_at=900.0)
    record = {"event_id": "e1", "type": "like", "ts": 1000.0, "actor_created_at": 900.0, "x": 1}
    out = rewrite_times(record, event, 5000.5)
    assert out["ts"] == 5000.5
    assert out["ts"] - out["actor_created_at"] == pytest.approx(100.0)
    assert out["x"] == 1
    assert record["ts"] == 1000.0  # the input is left alone


def test_rewrite_times_leaves_absent_creation_times_absent() -> None:
    event = PostSnapshot("e2", "p", "u", ts=10.0)
    out = rewrite_times({"event_id": "e2", "ts": 10.0}, event, 20.0)
    assert out == {"event_id": "e2", "ts": 20.0}


class RecordingProducer:
    """Stands in for a KafkaProducer in the publisher's unit test: keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def flush(self) -> None:
        pass


def placed_likes(times: list[float]) -> list[Placed]:
    out = []
    for n, ts in enumerate(times):
        record = {"event_id": f"e{n}", "type": "like", "actor_id": f"a{n}", "post_id": "p"}
        record |= {"author_id": "u", "ts": ts}
        event = LikeEvent(f"e{n}", "like", f"a{n}", "p", "u", ts=ts)
        out.append(Placed(ts, 0, n, event, json.dumps(record).encode()))
    return out


@pytest.mark.parametrize("rewrite", [False, True])
def test_publish_paced_notes_when_each_trigger_time_was_sent(rewrite: bool) -> None:
    producer = RecordingProducer()
    sent_at: dict[float, float] = {}
    events = placed_likes([1000.25, 1000.25, 2000.5])  # two events share a time
    count, _ = publish_paced(
        producer,  # type: ignore[arg-type]
        "likes",
        events,
        per_second=10_000.0,
        rewrite=rewrite,
        sent_at=sent_at,
    )
    assert count == 3 and [key for _, key, _ in producer.sent] == [b"a0", b"a1", b"a2"]
    times = [json.loads(value)["ts"] for _, _, value in producer.sent]
    if rewrite:
        assert times[0] > 1_700_000_000  # the send time
        assert sorted(sent_at) == sorted({trigger_key(t) for t in times})
    else:
        assert [value for _, _, value in producer.sent] == [p.payload for p in events]
        assert sorted(sent_at) == [1000.25, 2000.5]
    sends = sorted(sent_at.values())
    assert sends == sorted(sends) and all(s > 1_700_000_000 for s in sends)


def test_paced_schedule_is_even() -> None:
    due = list(paced_schedule(100.0, 5, 4.0))
    assert due == [100.0, 100.25, 100.5, 100.75, 101.0]
    assert list(paced_schedule(0.0, 0, 4.0)) == []


@pytest.mark.parametrize(
    ("flags", "size", "start"),
    [
        ([True, False, False, True, True, True, False], 3, 3),
        ([False] * 5, 2, 0),
        ([True, True], 5, 0),
        ([False, True, True, False, True, True], 2, 1),  # ties: the first
    ],
)
def test_densest_slice(flags: list[bool], size: int, start: int) -> None:
    assert densest_slice(flags, size) == start


def test_attack_accounts(tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    truth.write_text(
        json.dumps({"attacks": [{"accounts": ["a", "b"]}, {"accounts": ["b", "c"]}, {}]})
    )
    assert attack_accounts(truth) == {"a", "b", "c"}
    assert attack_accounts(tmp_path / "missing.json") == set()


def test_parse_summary() -> None:
    text = (
        "2026 INFO something\n"
        "replayed 278,281 events from 1 file(s) in 185.5 s (1,500 events/s), event time …\n"
    )
    assert parse_summary(text) == (278281, 185.5)
    with pytest.raises(ValueError):
        parse_summary("nothing here")


def test_head_of_takes_the_first_events(tmp_path: Path) -> None:
    capture = tmp_path / "c.jsonl.gz"
    with gzip.open(capture, "wt") as handle:
        for n in range(10):
            handle.write(json.dumps({"n": n}) + "\n")
        handle.write("\n")
    path, count = head_of(capture, 4, tmp_path / "head.jsonl")
    assert count == 4
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [0, 1, 2, 3]
    path, count = head_of(capture, None, tmp_path / "unused.jsonl")
    assert (path, count) == (capture, 10)


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_quick_plan_is_smaller_than_the_full_one() -> None:
    quick, full = plan_for(parse("--quick")), plan_for(parse())
    assert quick.hours < full.hours == 24
    assert quick.live_events is not None and full.live_events is None
    assert quick.live_time_cap < full.live_time_cap
    assert quick.latency_seconds < full.latency_seconds
    assert plan_for(parse("--quick", "--events", "500")).live_events == 500


def test_table_without_results_is_all_not_measured() -> None:
    rows = table_rows({}, Plan(7, 24, None, 45, 30))
    assert rows
    assert {r.verdict for r in rows} == {NOT_MEASURED}
    names = [r.name for r in rows]
    assert len(names) == len(set(names))
