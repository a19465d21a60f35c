"""The live path: a Faust app whose agents are thin drivers around :class:`Pipeline`.

Per batch taken from Kafka: decode and validate every record (bad ones go to the dead-letter
topic with the reason), run the valid ones through the pipeline, publish the alerts and wait
for the broker to acknowledge them. Only then does Faust ack the batch, so a crash at any
point redelivers it: windows are idempotent by ``event_id`` and alert ids are deterministic,
so redelivery neither double-counts nor loses an alert (downstream deduplicates by id).

No ``group_by``: every worker sees the same Redis, so cross-account state needs no
repartitioning.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import faust
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


class Detection:
    """Owns the pipeline of one worker process and serialises access to it.

    The pipeline is synchronous (redis-py); it runs in a thread so the event loop keeps
    serving Kafka heartbeats while Redis works.
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
                        pipeline = await asyncio.to_thread(self._open)
                    return await asyncio.to_thread(pipeline.process, events)
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
                    await asyncio.to_thread(self._pipeline.close)
                except StateError as err:
                    log.warning("could not checkpoint models on shutdown: %s", err)


#: Topic options for records likeguard decodes itself (so bad bytes reach the dead letters).
RAW_TOPIC: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


def new_faust_app(settings: Settings) -> faust.App:
    """A Faust app with likeguard's consumer settings and no agents (the bench reuses it)."""
    return faust.App(
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


def create_app(settings: Settings, metrics: Metrics) -> faust.App:
    """The Faust app with its topics and agents, configured from ``settings``."""
    app = new_faust_app(settings)
    likes_topic = app.topic(settings.likes_topic, **RAW_TOPIC)
    accounts_topic = app.topic(settings.accounts_topic, **RAW_TOPIC)
    alerts_topic = app.topic(settings.alerts_topic, **RAW_TOPIC)
    dead_letter_topic = app.topic(settings.dead_letter_topic, **RAW_TOPIC)
    detection = Detection(settings, metrics)

    async def handle(batch: Sequence[EventT]) -> None:
        started = time.monotonic()
        events: list[Event] = []
        pending = []
        for item in batch:
            try:
                events.append(parse_event(item.value))
            except InvalidEvent as err:
                metrics.observe_reject(err.reason)
                key, value = dead_letter(item, err)
                pending.append(await dead_letter_topic.send(key=key, value=value))
                metrics.dead_letters.inc()
        result = await detection.process(events) if events else BatchResult()
        for alert in result.alerts:
            pending.append(
                await alerts_topic.send(
                    key=alert.subject_id.encode("utf-8"), value=alert.to_json().encode("utf-8")
                )
            )
        # Wait for the broker to take every alert and dead letter before the batch is acked.
        await asyncio.gather(*pending)
        metrics.observe_batch(result, len(batch), started)

    # faust types agents with StreamT, which lacks take_events; the runtime object is a Stream.
    @app.agent(likes_topic, name="likeguard.detect")  # type: ignore[arg-type]
    async def detect(stream: faust.Stream) -> None:
        async for batch in stream.take_events(
            settings.batch_size, within=settings.batch_timeout_seconds
        ):
            await handle(batch)

    @app.agent(accounts_topic, name="likeguard.accounts")  # type: ignore[arg-type]
    async def accounts(stream: faust.Stream) -> None:
        async for batch in stream.take_events(
            settings.batch_size, within=settings.batch_timeout_seconds
        ):
            await handle(batch)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def checkpoint_models(sender: Any, **_: Any) -> None:
        await detection.close()

    app.detection = detection  # type: ignore[attr-defined]
    return app
