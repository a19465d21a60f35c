"""The live agent's building blocks that need no broker: the batch lane, the event-time merge
feed, the fetch-wait hook, and the metrics of a finished batch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bench.bare_agent import create_bare_app
from detectors.pipeline import BatchResult
from stream.app import BatchLane, KafkaTransport, MergeFeed, TakenBatch, new_faust_app
from stream.config import Settings
from stream.merge import EventTimeMerge
from stream.metrics import Metrics


def batch(n: int) -> TakenBatch:
    """A stand-in batch; the lane only passes it to ``finish``."""
    return TakenBatch(records=[], values=[], sent=[], taken_at=float(n))


class Recorder:
    """A ``finish`` that logs when each batch starts and ends, and ends when told to."""

    def __init__(self, fail: set[int] | None = None) -> None:
        self.log: list[tuple[str, int]] = []
        self.release: dict[int, asyncio.Event] = {}
        self.fail = fail or set()

    async def finish(self, taken: TakenBatch) -> None:
        n = int(taken.taken_at)
        self.log.append(("start", n))
        await self.release.setdefault(n, asyncio.Event()).wait()
        if n in self.fail:
            raise RuntimeError(f"batch {n} failed")
        self.log.append(("end", n))

    def done(self, n: int) -> None:
        self.release.setdefault(n, asyncio.Event()).set()


def test_lane_returns_while_a_batch_runs_and_keeps_batches_in_order() -> None:
    async def scenario() -> list[tuple[str, int]]:
        rec = Recorder()
        lane = BatchLane(rec.finish)
        await lane.submit(batch(1))
        await asyncio.sleep(0)
        # The agent is free to take the next batch while batch 1 is in progress.
        assert rec.log == [("start", 1)]
        second = asyncio.create_task(lane.submit(batch(2)))
        for _ in range(5):
            await asyncio.sleep(0)
        # Batch 2 waits for batch 1: one batch in the pipeline, one held.
        assert rec.log == [("start", 1)] and not second.done()
        rec.done(1)
        await second
        await asyncio.sleep(0)
        rec.done(2)
        await lane.wait()
        return rec.log

    assert asyncio.run(scenario()) == [("start", 1), ("end", 1), ("start", 2), ("end", 2)]


def test_lane_raises_a_failed_batch_and_never_starts_the_next() -> None:
    async def scenario() -> Recorder:
        rec = Recorder(fail={1})
        lane = BatchLane(rec.finish)
        await lane.submit(batch(1))
        rec.done(1)
        with pytest.raises(RuntimeError, match="batch 1 failed"):
            await lane.submit(batch(2))
        return rec

    assert asyncio.run(scenario()).log == [("start", 1)]


def test_lane_cancel_stops_the_batch_in_progress() -> None:
    async def scenario() -> Recorder:
        rec = Recorder()
        lane = BatchLane(rec.finish)
        await lane.submit(batch(1))
        await asyncio.sleep(0)
        await lane.cancel()
        rec.done(1)
        await asyncio.sleep(0)
        await lane.wait()  # nothing left
        return rec

    assert asyncio.run(scenario()).log == [("start", 1)]


def test_fetch_wait_setting_reaches_the_aiokafka_consumer() -> None:
    settings = Settings(fetch_max_wait_seconds=0.05)

    async def build() -> int:
        app = new_faust_app(settings)
        assert isinstance(app.transport, KafkaTransport)
        thread = app.consumer._thread  # type: ignore[attr-defined]
        consumer = thread._create_worker_consumer(app.transport)
        return int(consumer._fetch_max_wait_ms)

    assert asyncio.run(build()) == 50


def test_bare_agent_uses_the_same_consumer_transport() -> None:
    settings = Settings(fetch_max_wait_seconds=0.25)

    async def build() -> tuple[object, int]:
        app = create_bare_app(settings, CollectorRegistry())
        return type(app.transport), app.transport.fetch_max_wait_ms  # type: ignore[attr-defined]

    assert asyncio.run(build()) == (KafkaTransport, 250)


def test_batch_metrics_export_lag_as_gauge_histogram_and_event_time() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    result = BatchResult(newest_event_time=1000.0)
    metrics.observe_batch(result, 10, started=0.0)

    def value(name: str, **labels: str) -> float:
        got = registry.get_sample_value(name, labels)
        assert got is not None, name
        return got

    lag = value("likeguard_event_time_lag_seconds")
    assert lag > 0
    assert value("likeguard_newest_event_timestamp_seconds") == 1000.0
    assert value("likeguard_batch_event_time_lag_seconds_count") == 1
    assert value("likeguard_batch_event_time_lag_seconds_sum") == lag
    assert value("likeguard_batch_event_time_lag_seconds_bucket", le="3600.0") == 0
    assert value("likeguard_batch_event_time_lag_seconds_bucket", le="+Inf") == 1


# ---------------------------------------------------------------- the merge feed


T0 = 1793491200.0


def record(partition: int, offset: int, ts: float | None) -> SimpleNamespace:
    """A stand-in for a Faust event (the feed reads ``message``); ``ts`` counts from 2026-11-01."""
    value = b"not json" if ts is None else json.dumps({"type": "like", "ts": T0 + ts}).encode()
    return SimpleNamespace(
        message=SimpleNamespace(partition=partition, offset=offset, value=value), value=value
    )


class Broker:
    """What the feed asks the consumer: assigned partitions and their high watermarks."""

    def __init__(self, partitions: set[int]) -> None:
        self.partitions = set(partitions)
        self.highwaters: dict[int, int] = {}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def feed_for(
    broker: Broker, finish: Callable[[TakenBatch], Coroutine[Any, Any, None]], clock: Clock
) -> MergeFeed:
    merge: EventTimeMerge[Any] = EventTimeMerge(idle_seconds=0.5, max_held=100)
    return MergeFeed(
        merge,
        BatchLane(finish),
        batch_size=3,
        partitions=lambda: broker.partitions,
        highwater=broker.highwaters.get,
        metrics=Metrics(CollectorRegistry()),
        clock=clock,
    )


def offsets(batch: TakenBatch) -> list[tuple[int, int]]:
    return [(r.message.partition, r.message.offset) for r in batch.records]


def test_feed_sends_batches_in_event_time_order_across_partitions() -> None:
    sent: list[list[tuple[int, int]]] = []

    async def finish(batch: TakenBatch) -> None:
        assert batch.values == [r.value for r in batch.records]
        sent.append(offsets(batch))

    async def scenario() -> None:
        broker = Broker({0, 1})
        feed = feed_for(broker, finish, Clock())
        feed.add([record(0, 0, 10.0), record(0, 1, 30.0), record(0, 2, 40.0)])
        assert not await feed.pump()  # partition 1 has delivered nothing yet
        feed.add([record(1, 0, 20.0), record(1, 1, 35.0)])
        broker.highwaters.update({0: 3, 1: 5})  # 0 is caught up, 1 has more to come
        assert await feed.pump()  # one batch of at most batch_size (3)
        assert await feed.pump()
        assert not await feed.pump()  # 40.0 waits: partition 1 is only at 35.0
        feed.add([record(1, 2, 50.0), record(1, 3, None), record(1, 4, 60.0)])
        assert await feed.pump()  # the undecodable record goes first
        assert await feed.pump()
        await feed.lane.wait()
        assert feed.merge.held == 0

    asyncio.run(scenario())
    assert sent == [[(0, 0), (1, 0), (0, 1)], [(1, 1)], [(1, 3), (0, 2), (1, 2)], [(1, 4)]]


def test_feed_ticker_releases_once_a_silent_partition_goes_idle() -> None:
    sent: list[list[tuple[int, int]]] = []

    async def finish(batch: TakenBatch) -> None:
        sent.append(offsets(batch))

    async def scenario() -> None:
        clock = Clock()
        broker = Broker({0, 1})
        feed = feed_for(broker, finish, clock)
        ticker = asyncio.create_task(feed.tick(interval=0.001))
        feed.add([record(0, 0, 10.0)])
        await asyncio.sleep(0.01)
        assert sent == []  # partition 1 is silent for less than idle_seconds
        clock.now += 0.5
        await asyncio.sleep(0.01)
        ticker.cancel()
        await feed.lane.wait()

    asyncio.run(scenario())
    assert sent == [[(0, 0)]]


def test_feed_time_spent_waiting_for_detection_is_not_silence() -> None:
    clock = Clock()

    async def finish(batch: TakenBatch) -> None:
        if batch.records[0].message.offset == 0:
            clock.now += 10.0  # a slow first batch (Redis down): the feed waits for it

    async def scenario() -> int:
        broker = Broker({0, 1})
        feed = feed_for(broker, finish, clock)
        feed.add([record(0, 0, 10.0), record(1, 0, 11.0), record(0, 1, 12.0)])
        feed.add([record(1, 1, 12.5), record(0, 2, 13.0), record(1, 2, 14.0)])
        assert await feed.pump()  # up to 13.0, in batches of 3
        assert await feed.pump()  # waits 10 s for the first batch
        await feed.lane.wait()
        # Partition 0 delivered nothing for 10 s, all of it spent waiting for the lane, so it
        # is not idle: 14.0 still waits for it.
        assert not await feed.pump()
        return feed.merge.held

    assert asyncio.run(scenario()) == 1


def test_feed_drops_held_records_of_revoked_partitions() -> None:
    sent: list[list[tuple[int, int]]] = []

    async def finish(batch: TakenBatch) -> None:
        sent.append(offsets(batch))

    async def scenario() -> int:
        broker = Broker({0, 1})
        feed = feed_for(broker, finish, Clock())
        feed.add([record(0, 0, 10.0), record(1, 0, 5.0), record(1, 1, 20.0)])
        broker.highwaters.update({1: 2})
        broker.partitions = {1}  # partition 0 moved to another worker
        await feed.pump()
        await feed.lane.wait()
        return feed.merge.dropped

    assert asyncio.run(scenario()) == 1
    assert sent == [[(1, 0), (1, 1)]]
