"""The live path: a Faust app whose agents are thin drivers around :class:`Pipeline`.

Per batch taken from Kafka: decode and validate every record (bad ones go to the dead-letter
topic with the reason), run the valid ones through the pipeline, publish the alerts and wait
for the broker to acknowledge them and the dead letters. Only then are the batch's records
acked, so a crash at any point redelivers them: windows are idempotent by ``event_id`` and
alert ids are deterministic, so redelivery neither double-counts nor loses an alert
(downstream deduplicates by id).

The agent takes and decodes batch N+1 while batch N is in the pipeline (:class:`BatchLane`):
Faust's per-record work runs on the event loop while the pipeline waits on Redis in its
thread. The pipeline itself stays serial and in order, one batch at a time.

No ``group_by``: every worker sees the same Redis, so cross-account state needs no
repartitioning.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import EventT

from detectors.config import load_config
from detectors.pipeline import BatchResult, Pipeline
from detectors.state import RedisState, StateError
from schemas.records import Event
from schemas.validate import InvalidEvent, parse_event
from stream.config import Settings
from stream.metrics import Metrics

log = logging.getLogger(__name__)

#: Backoff bounds when Redis is unavailable: the batch is retried, never skipped.
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0

_T = TypeVar("_T")


def dead_letter(event: EventT, error: InvalidEvent) -> tuple[bytes | None, bytes]:
    """The dead-letter record for a rejected message: reason, place, and the exact payload."""
    message = event.message
    raw = message.value if isinstance(message.value, bytes) else bytes(message.value or b"")
    record: dict[str, Any] = {
        "reason": error.reason,
        "field": error.field,
        "error": str(error),
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": message.timestamp,
    }
    try:
        record["payload"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        record["payload_base64"] = base64.b64encode(raw).decode("ascii")
    key = message.key if isinstance(message.key, bytes) else None
    return key, json.dumps(record, ensure_ascii=False).encode("utf-8")


async def _in_thread(func: Callable[..., _T], *args: Any) -> _T:
    """``asyncio.to_thread``, except that a cancelled caller still waits for the thread.

    A thread cannot be interrupted: without this, cancelling the caller (worker shutdown)
    would release :class:`Detection`'s lock while the pipeline still runs, and the next
    holder (the shutdown checkpoint) would use the pipeline from a second thread.
    """
    future = asyncio.ensure_future(asyncio.to_thread(func, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


class Detection:
    """Owns the pipeline of one worker process and serialises access to it.

    The pipeline is synchronous (redis-py); it runs in a thread so the event loop keeps
    serving Kafka heartbeats (and taking the next batch) while Redis works. The lock keeps
    one batch in the pipeline at a time, across both agents.
    """

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._pipeline: Pipeline | None = None
        self._lock = asyncio.Lock()

    def _open(self) -> Pipeline:
        if self._pipeline is None:
            state = RedisState.from_url(
                self.settings.redis_url, self.settings.namespace, self.metrics.observe_redis
            )
            self._pipeline = Pipeline(state, load_config(self.settings.config or None))
        return self._pipeline

    async def process(self, events: Sequence[Event]) -> BatchResult:
        """Run a batch, retrying with backoff while Redis is down (never skipping it)."""
        delay = RETRY_FIRST_SECONDS
        async with self._lock:
            while True:
                try:
                    pipeline = self._pipeline
                    if pipeline is None:  # first batch, or Redis was down until now
                        pipeline = await _in_thread(self._open)
                    return await _in_thread(pipeline.process, events)
                except StateError as err:
                    log.error(
                        "batch of %d events not processed, retrying in %.1f s: %s",
                        len(events),
                        delay,
                        err,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def close(self) -> None:
        async with self._lock:
            if self._pipeline is not None:
                try:
                    await _in_thread(self._pipeline.close)
                except StateError as err:
                    log.warning("could not checkpoint models on shutdown: %s", err)


@dataclass(slots=True)
class TakenBatch:
    """A batch taken from Kafka and decoded, waiting for the pipeline or in it."""

    #: Every record taken, valid or not: all are acked together once the batch is done.
    records: Sequence[EventT]
    #: The records that passed validation, in order.
    events: list[Event] = field(default_factory=list)
    #: Dead letters on their way to the broker; the batch is acked only after they land.
    sent: list[Awaitable[Any]] = field(default_factory=list)
    #: ``time.monotonic()`` when the batch was taken.
    taken_at: float = field(default_factory=time.monotonic)


class BatchLane:
    """Runs taken batches one at a time, in order, while the agent takes the next one.

    ``submit`` waits for the previous batch to be done (its records acked) before starting
    the next, so at most two batches are held: one being finished, one decoded and waiting.
    Faust's take buffer does not refill while the agent holds a batch, so nothing else
    accumulates beyond Faust's own bounded topic buffer. A batch that fails raises from the
    next ``submit`` (or ``wait``), so the agent crashes as it did when it processed inline;
    its records stay unacked, so the group never commits past them and they are delivered
    again after a restart or rebalance.
    """

    def __init__(self, finish: Callable[[TakenBatch], Coroutine[Any, Any, None]]) -> None:
        self._finish = finish
        self._current: asyncio.Task[None] | None = None

    async def submit(self, batch: TakenBatch) -> None:
        await self.wait()
        self._current = asyncio.create_task(self._finish(batch))
        self._current.add_done_callback(_log_failure)

    async def wait(self) -> None:
        """Until the batch in progress is done; raises its error if it failed."""
        task, self._current = self._current, None
        if task is not None:
            await task

    async def cancel(self) -> None:
        """Stop the batch in progress (its records stay unacked, so they are redelivered)."""
        task, self._current = self._current, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await task


def _log_failure(task: asyncio.Task[None]) -> None:
    # Logged when it happens: the agent only sees the error when it submits the next batch,
    # which may be much later on a quiet topic.
    if not task.cancelled() and task.exception() is not None:
        log.error("batch failed; its records stay unacked", exc_info=task.exception())


#: Topic options for records likeguard decodes itself (so bad bytes reach the dead letters).
RAW_TOPIC: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, with the fetch wait of :class:`KafkaTransport`."""

    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes fetch_max_wait_ms=1500 and offers no setting for it. aiokafka keeps the
        # value as given and hands it to its Fetcher in start(), which runs after this returns
        # (tests/unit/stream/test_app.py checks the value the consumer holds).
        if isinstance(transport, KafkaTransport):
            consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class KafkaTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with a configurable fetch wait (Faust fixes it at 1.5 s).

    The broker holds a fetch request open up to this long waiting for records; some brokers
    (Tansu) hold it most of that time even while records arrive, so it bounds how fresh a
    batch can be. Installed by :func:`new_faust_app` through the app's ``transport``.
    """

    Consumer = _Consumer

    def __init__(self, url: Any, app: faust.App, *, fetch_max_wait_ms: int) -> None:
        super().__init__(url, app)
        self.fetch_max_wait_ms = fetch_max_wait_ms


def new_faust_app(settings: Settings) -> faust.App:
    """A Faust app with likeguard's consumer settings and no agents (the bench reuses it)."""
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
    )
    # Before anything creates the default transport (declaring a topic would).
    app.transport = KafkaTransport(
        app.conf.broker_consumer,
        app,
        fetch_max_wait_ms=max(1, round(settings.fetch_max_wait_seconds * 1000)),
    )
    return app


def create_app(settings: Settings, metrics: Metrics) -> faust.App:
    """The Faust app with its topics and agents, configured from ``settings``."""
    app = new_faust_app(settings)
    likes_topic = app.topic(settings.likes_topic, **RAW_TOPIC)
    accounts_topic = app.topic(settings.accounts_topic, **RAW_TOPIC)
    alerts_topic = app.topic(settings.alerts_topic, **RAW_TOPIC)
    dead_letter_topic = app.topic(settings.dead_letter_topic, **RAW_TOPIC)
    detection = Detection(settings, metrics)

    async def take(records: Sequence[EventT]) -> TakenBatch:
        """Decode and validate; rejected records go to the dead-letter topic."""
        batch = TakenBatch(records)
        for item in records:
            try:
                batch.events.append(parse_event(item.value))
            except InvalidEvent as err:
                metrics.observe_reject(err.reason)
                key, value = dead_letter(item, err)
                batch.sent.append(await dead_letter_topic.send(key=key, value=value))
                metrics.dead_letters.inc()
        return batch

    async def finish(batch: TakenBatch, stream: faust.Stream) -> None:
        """Pipeline, alerts, then the acks: after the broker took alerts and dead letters."""
        result = await detection.process(batch.events) if batch.events else BatchResult()
        pending = batch.sent
        for alert in result.alerts:
            pending.append(
                await alerts_topic.send(
                    key=alert.subject_id.encode("utf-8"), value=alert.to_json().encode("utf-8")
                )
            )
        await asyncio.gather(*pending)
        for record in batch.records:
            await stream.ack(record)
        metrics.observe_batch(result, len(batch.records), batch.taken_at)

    async def drive(stream: faust.Stream) -> None:
        # take_events() would ack a batch as soon as the agent asks for the next one, i.e.
        # before the lane has finished it. noack_take() yields the events and never acks
        # them; on a noack() stream nothing else acks them either: finish() does.
        # faust types noack() as StreamT, which lacks noack_take; it returns a Stream.
        manual = cast(faust.Stream, stream.noack())
        lane = BatchLane(lambda batch: finish(batch, manual))
        try:
            async for records in manual.noack_take(
                settings.batch_size, within=settings.batch_timeout_seconds
            ):
                await lane.submit(await take(records))
            await lane.wait()
        finally:
            await lane.cancel()

    # faust types agents with StreamT; the runtime object is a Stream.
    @app.agent(likes_topic, name="likeguard.detect")  # type: ignore[arg-type]
    async def detect(stream: faust.Stream) -> None:
        await drive(stream)

    @app.agent(accounts_topic, name="likeguard.accounts")  # type: ignore[arg-type]
    async def accounts(stream: faust.Stream) -> None:
        await drive(stream)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def checkpoint_models(sender: Any, **_: Any) -> None:
        await detection.close()

    app.detection = detection  # type: ignore[attr-defined]
    return app
