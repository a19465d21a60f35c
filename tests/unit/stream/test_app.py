"""The live agent's building blocks that need no broker: the batch lane, the fetch-wait hook,
and the metrics of a finished batch."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from bench.bare_agent import create_bare_app
from detectors.pipeline import BatchResult
from stream.app import BatchLane, KafkaTransport, TakenBatch, new_faust_app
from stream.config import Settings
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
