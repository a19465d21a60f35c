"""The live path: a Faust app whose agents are thin drivers around :class:`Pipeline`.

Per batch: a detection child process decodes and validates every record and
runs the valid ones through the pipeline; the parent sends the bad ones to the dead-letter
topic with the reason, publishes the alerts and waits for the broker to acknowledge them and
the dead letters. Only then are the batch's records
acked, so a crash at any point redelivers them: windows are idempotent by ``event_id`` and
alert ids are deterministic, so redelivery neither double-counts nor loses an alert
(downstream deduplicates by id).

Records taken from Kafka first go through the worker's event-time merge
(:class:`MergeFeed` around :class:`~stream.merge.EventTimeMerge`): the batches handed to
detection are in the order replay uses, (event time, partition, offset), as far as every
assigned partition has got, as replay sees the capture. Held records are not acked yet.

The agent hands on batch N+1 while batch N is in detection (:class:`BatchLane`): Faust's
per-record work runs on the event loop, on one core, while the child process
(:mod:`stream.detection_process`) runs the pipeline on another. Detection stays serial and in
order, one batch at a time.

No ``group_by``: every worker sees the same Redis, so per-account state needs no
repartitioning. The detectors with a cross-account view (swarm, new_account_spike,
fan_imbalance: :attr:`~detectors.base.Detector.cross_account`) judge likes of accounts that
other workers hold, and their findings depend on the order of every worker's likes: each worker
runs the per-account detectors and forwards its batches' likes, with the window counts it gave
them, to one swarm stage, the agent on a one-partition internal topic
(:mod:`stream.swarm_stage`), which takes them in replay's order and runs the cross-account
detectors there.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT

from detectors.config import load_config
from detectors.swarm_stage import SwarmStage
from schemas.records import Alert
from schemas.validate import InvalidEvent
from stream.config import Settings
from stream.detection_process import ChildResult, DetectionProcess, Timing
from stream.merge import EventTimeMerge, WaitingClock, event_time
from stream.metrics import Metrics
from stream.swarm_stage import ForwardedLike, SwarmFeed, decode_chunk, encode_chunk

log = logging.getLogger(__name__)

#: Backoff bounds when Redis is unavailable: the batch is retried, never skipped.
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0


def dead_letter(event: EventT, error: InvalidEvent) -> tuple[bytes | None, bytes]:
    """The dead-letter record for a rejected message: reason, place, and the exact payload."""
    message = event.message
    raw = _raw(message.value)
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


class _Outcome(Protocol):
    timings: list[Timing]
    state_error: str | None


OutcomeT = TypeVar("OutcomeT", bound=_Outcome)


async def until_processed(
    run: Callable[[], Awaitable[OutcomeT]], metrics: Metrics, what: str
) -> OutcomeT:
    """``run()`` (a child's batch) again and again, with backoff, until Redis answered (never
    skipping it); every try's Redis timings go to ``metrics``."""
    delay = RETRY_FIRST_SECONDS
    while True:
        done = await run()
        for operation, seconds, failed in done.timings:
            metrics.observe_redis(operation, seconds, failed)
        if done.state_error is None:
            return done
        log.error("%s not processed, retrying in %.1f s: %s", what, delay, done.state_error)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_SECONDS)


class Detection:
    """Owns the detection of one worker process and serialises access to it.

    The pipeline runs in a child process (:class:`~stream.detection_process.DetectionProcess`),
    so Faust's event loop keeps serving Kafka and taking the next batch on its own core
    while the child decodes, validates and runs the batch. The lock keeps one batch in the
    child at a time, across both agents.
    """

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._child: DetectionProcess | None = None
        self._lock = asyncio.Lock()

    async def process(
        self, values: Sequence[bytes], places: Sequence[tuple[int, int]] | None = None
    ) -> ChildResult:
        """Run a batch of raw record values, retrying with backoff while Redis is down (never
        skipping it); the result has the rejects for the dead-letter topic and, given the
        records' ``places`` (partition, offset), the likes for the swarm stage."""
        async with self._lock:
            if self._child is None:
                self._child = DetectionProcess(self.settings)
            child = self._child
            return await until_processed(
                lambda: child.run(values, places),
                self.metrics,
                f"batch of {len(values)} records",
            )

    async def close(self) -> None:
        async with self._lock:
            if self._child is not None:
                error = await self._child.close()
                self._child = None
                if error is not None:
                    log.warning("could not checkpoint models on shutdown: %s", error)


class SwarmRunner:
    """Runs the swarm stage's batches (:class:`~detectors.swarm_stage.SwarmStage`) in a child
    process of its own (started when this worker first gets the stage), retrying while Redis
    is down; the event loop and the detection child go on meanwhile."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._child: DetectionProcess | None = None

    async def process(self, likes: Sequence[ForwardedLike]) -> list[Alert]:
        if self._child is None:
            self._child = DetectionProcess(self.settings)
        child = self._child
        done = await until_processed(
            lambda: child.run_stage(likes), self.metrics, f"swarm stage: {len(likes)} likes"
        )
        return done.alerts

    async def close(self) -> None:
        if self._child is not None:
            child, self._child = self._child, None
            await child.close()


@dataclass(slots=True)
class TakenBatch:
    """A batch taken from Kafka and decoded, waiting for the pipeline or in it."""

    #: Every record taken, valid or not: all are acked together once the batch is done.
    records: Sequence[EventT]
    #: The records' raw values, in order (decoded and validated by the detection process).
    values: list[bytes] = field(default_factory=list)
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


#: How often the merge is looked at when no records arrive (a partition may have gone idle).
MERGE_TICK_SECONDS = 0.05

#: How often a worker tells the swarm stage how far each of its partitions has got, besides
#: the likes it forwards; the stage trusts a partition's "caught up" for
#: ``SWARM_CAUGHT_UP_SECONDS`` after the last word from it (its worker may have died since).
SWARM_PROGRESS_SECONDS = 0.5
SWARM_CAUGHT_UP_SECONDS = 2.0
#: How often the swarm stage asks the broker for the source partitions' high watermarks
#: itself: a dead worker's last "caught up" must not outlive the records that came after it.
SWARM_HIGHWATER_SECONDS = 0.25
#: How long the swarm stage's take waits for more forwarded records. Faust's take waits this
#: long from the moment it starts, not from the first record, and a worker forwards a handful
#: of records per batch: a batch-sized window would put up to its length under every swarm
#: alert.
SWARM_TAKE_SECONDS = 0.01


class MergeFeed:
    """Puts the records an agent takes through an :class:`~stream.merge.EventTimeMerge` and
    hands what it releases to the :class:`BatchLane`, in event-time order.

    ``add`` holds a taken chunk; ``pump`` sends one batch (up to ``batch_size`` released
    records) to the lane. Held records are not acked, so a crash redelivers them. The merge's
    clock runs only while the feed is not waiting for the lane: while detection is slow (or
    Redis is down) nothing is delivered, and that must not make every partition look idle.

    ``partitions`` gives the partitions of the topic currently assigned to this worker
    (``None`` when the consumer cannot tell: nothing changes) and ``highwater`` the broker's
    high watermark of one (``None`` when not known): both come from the consumer (see
    :func:`create_app`), and are plain callables so the feed can be tested without a broker.
    """

    def __init__(
        self,
        merge: EventTimeMerge[EventT],
        lane: BatchLane,
        batch_size: int,
        partitions: Callable[[], Iterable[int] | None],
        highwater: Callable[[int], int | None],
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.merge = merge
        self.lane = lane
        self.batch_size = batch_size
        self._partitions = partitions
        self._highwater = highwater
        self.now = WaitingClock(clock)
        self._lock = asyncio.Lock()
        self._counts = None if metrics is None else MergeCounts(metrics)

    def add(self, records: Sequence[EventT]) -> None:
        now = self.now()
        for record in records:
            message = record.message
            self.merge.add(
                message.partition, message.offset, event_time(_raw(message.value)), record, now
            )
        self._count()

    def revoke(self, partitions: Iterable[int]) -> None:
        """Drop the held records of partitions this worker lost (they are redelivered)."""
        dropped = self.merge.revoke(partitions)
        if dropped:
            log.info("rebalance: dropped %d held records of revoked partitions", dropped)

    async def pump(self) -> bool:
        """Send one batch of released records to the lane; False when nothing was released."""
        async with self._lock:
            now = self.now()
            assigned = self._partitions()
            if assigned is not None:
                self.revoke(self.merge.partitions - set(assigned))
                self.merge.assign(assigned, now)
            for partition in self.merge.partitions:
                self.merge.observe_highwater(partition, self._highwater(partition), now)
            released = self.merge.release(now, limit=self.batch_size)
            self._count()
            if not released:
                return False
            with self.now.paused():
                await self.lane.submit(TakenBatch(released, [_raw(r.value) for r in released]))
            return True

    async def tick(self, interval: float = MERGE_TICK_SECONDS) -> None:
        """Release what the passing of time allows (idle partitions) while nothing arrives."""
        while True:
            await asyncio.sleep(interval)
            if self.merge.held:
                await self.pump()

    def _count(self) -> None:
        if self._counts is not None:
            self._counts.observe(self.merge)


class MergeCounts:
    """Moves a merge's ``forced`` and ``late`` tallies into the Prometheus counters."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.forced = 0
        self.late = 0

    def observe(self, merge: EventTimeMerge[Any]) -> int:
        """Count what ``merge`` tallied since the last call; returns the new forced releases."""
        forced = merge.forced - self.forced  # the tallies only grow, resets included
        if forced:
            self._metrics.merge_forced.inc(forced)
        if merge.late > self.late:
            self._metrics.merge_late.inc(merge.late - self.late)
        self.forced, self.late = merge.forced, merge.late
        return forced


def batch_floor(forward: Mapping[int, tuple[float | None, bytes]]) -> float | None:
    """The newest event time of a batch, which the swarm stage may take as every forwarded
    partition's newest: the merge let the batch go in event-time order, so what the worker
    forwards of these partitions later is no older (a late record aside, out of order in the
    worker too), and the stage need not wait for their next batch to go up to it.

    >>> batch_floor({0: (10.0, b"[]"), 1: (12.5, b"[]"), 2: (None, b"[]")})
    12.5
    >>> batch_floor({3: (None, b"[]")}) is None
    True
    """
    return max((newest for newest, _ in forward.values() if newest is not None), default=None)


#: The worker's exit status when an agent failed (EX_SOFTWARE).
EXIT_AGENT_FAILED = 70


async def exit_on_agent_error(agent: Any, error: BaseException) -> None:
    """An agent failed: the worker exits at once, without committing anything more.

    Faust would restart the agent in this process, and the records its stream had taken
    would never be read again here, while the records after them are acked, and the group
    commits the first run of acked offsets, past the lost ones. A worker that dies is
    restarted (by compose, systemd, Kubernetes) from the last commit and reads them again.
    """
    log.critical(
        "agent %s failed; exiting (status %d) so that its records are read again: %r",
        getattr(agent, "name", agent),
        EXIT_AGENT_FAILED,
        error,
        exc_info=error,
    )
    logging.shutdown()
    os._exit(EXIT_AGENT_FAILED)


def _log_failure(task: asyncio.Task[None]) -> None:
    # Logged when it happens: the agent only sees the error when it submits the next batch,
    # which may be much later on a quiet topic.
    if not task.cancelled() and task.exception() is not None:
        log.error("batch failed; its records stay unacked", exc_info=task.exception())


def _raw(value: Any) -> bytes:
    """A record value as bytes (``None``, a tombstone, becomes empty: rejected as not JSON)."""
    if isinstance(value, bytes):
        return value
    return bytes(value or b"")


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


class _App(faust.App):
    async def _on_agent_error(self, agent: Any, exc: BaseException) -> None:
        # Faust's own handler commits and lets the supervisor restart the agent in-process.
        await exit_on_agent_error(agent, exc)


def new_faust_app(settings: Settings) -> faust.App:
    """A Faust app with likeguard's consumer settings and no agents (the bench reuses it).

    An agent that fails ends the worker (:func:`exit_on_agent_error`)."""
    app = _App(
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
        # Faust would otherwise hold a rebalance until every record taken is acked, and the
        # swarm stage holds records until a dead worker's partitions have moved, i.e. until
        # the rebalance is over: a deadlock broken only by the stage's wait running out (and
        # the stage then going on out of event-time order). Nothing needs the wait: what is
        # not acked is read again by the partition's next owner, and that is a no-op.
        stream_wait_empty=False,
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
    swarm_topic = app.topic(settings.swarm_stage_topic, partitions=1, **RAW_TOPIC)
    detection = Detection(settings, metrics)
    swarm_runner = SwarmRunner(settings, metrics)
    swarm_on = SwarmStage.enabled(load_config(settings.config or None))
    # Per partition of the likes topic this worker holds: the offset after the last record
    # whose batch is done (what the progress reports to the swarm stage say).
    processed: dict[int, int] = {}

    async def publish(alert: Alert) -> Awaitable[Any]:
        """Hand ``alert`` to the producer; await the result for the broker's acknowledgement."""
        return await alerts_topic.send(
            key=alert.subject_id.encode("utf-8"), value=alert.to_json().encode("utf-8")
        )

    async def finish(batch: TakenBatch, stream: faust.Stream, forward: bool) -> None:
        """Detection, dead letters, alerts and the likes for the swarm stage, then the acks:
        after the broker took them all."""
        places = (
            [(r.message.partition, r.message.offset) for r in batch.records] if forward else None
        )
        done = await detection.process(batch.values, places) if batch.values else ChildResult()
        pending = batch.sent
        ends: dict[int, int] = {}
        if done.forward and places is not None:
            for partition, offset in places:
                ends[partition] = max(ends.get(partition, 0), offset + 1)
            floor = batch_floor(done.forward)
            for partition, (_, likes) in done.forward.items():
                chunk = encode_chunk(
                    partition,
                    ends[partition],
                    floor,
                    highwater(settings.likes_topic, partition),
                    likes,
                )
                pending.append(await swarm_topic.send(value=chunk))
        for rejected in done.rejected:
            metrics.observe_reject(rejected.reason)
            key, value = dead_letter(batch.records[rejected.index], rejected.error())
            pending.append(await dead_letter_topic.send(key=key, value=value))
            metrics.dead_letters.inc()
        for alert in done.result.alerts:
            pending.append(await publish(alert))
        await asyncio.gather(*pending)
        for record in batch.records:
            await stream.ack(record)
        for partition, end in ends.items():
            processed[partition] = max(processed.get(partition, 0), end)
        metrics.observe_batch(done.result, len(batch.records), batch.taken_at)

    async def report_progress() -> None:
        """Tell the swarm stage, now and then, how far each of this worker's partitions has
        got, so one with nothing new still counts as caught up there (and one whose worker
        died stops counting so: its reports end)."""
        while True:
            await asyncio.sleep(SWARM_PROGRESS_SECONDS)
            for partition in sorted(assigned(settings.likes_topic) or ()):
                done = processed.get(partition, committed(settings.likes_topic, partition))
                edge = highwater(settings.likes_topic, partition)
                if edge is not None:
                    progress = encode_chunk(partition, done, None, edge, b"[]")
                    await swarm_topic.send(value=progress)

    feeds: dict[str, MergeFeed] = {}
    metrics.watch_merge(lambda: sum(feed.merge.held for feed in feeds.values()))

    def assigned(topic: str) -> set[int] | None:
        try:
            tps = app.consumer.assignment()
        except Exception:  # the consumer is not running (starting, stopping): no change
            return None
        return {tp.partition for tp in tps if tp.topic == topic}

    def highwater(topic: str, partition: int) -> int | None:
        # The high watermark aiokafka last saw in a fetch response (no request is made).
        try:
            return cast("int | None", app.consumer.highwater(TP(topic, partition)))
        except Exception:  # not assigned (any more), or the consumer is not running
            return None

    def committed(topic: str, partition: int) -> int:
        # Where this worker started on the partition, or 0: everything before it was done by
        # someone. Faust keeps it from the seek at assignment (a defaultdict: .get, not []).
        offsets = getattr(app.consumer, "_committed_offset", {})
        return cast("int | None", offsets.get(TP(topic, partition))) or 0

    async def drive(stream: faust.Stream, topic: str) -> None:
        # take_events() would ack a batch as soon as the agent asks for the next one, i.e.
        # before the lane has finished it. noack_take() yields the events and never acks
        # them; on a noack() stream nothing else acks them either: finish() does.
        # faust types noack() as StreamT, which lacks noack_take; it returns a Stream.
        manual = cast(faust.Stream, stream.noack())
        forward = swarm_on and topic == settings.likes_topic
        lane = BatchLane(lambda batch: finish(batch, manual, forward))
        feed = feeds[topic] = MergeFeed(
            EventTimeMerge(
                idle_seconds=settings.merge_idle_seconds,
                behind_idle_seconds=settings.merge_behind_idle_seconds,
                max_held=settings.merge_max_held,
            ),
            lane,
            settings.batch_size,
            partitions=lambda: assigned(topic),
            highwater=lambda partition: highwater(topic, partition),
            metrics=metrics,
        )
        ticker = asyncio.create_task(feed.tick())
        reporter = asyncio.create_task(report_progress()) if forward else None
        try:
            async for records in manual.noack_take(
                settings.batch_size, within=settings.batch_timeout_seconds
            ):
                if ticker.done():  # a batch the ticker sent failed: crash, as without it
                    ticker.result()
                feed.add(records)
                await feed.pump()
            await lane.wait()
        finally:
            for task in (ticker, reporter):
                if task is not None:
                    task.cancel()
                    with suppress(asyncio.CancelledError, Exception):
                        await task
            await lane.cancel()

    # faust types agents with StreamT; the runtime object is a Stream.
    @app.agent(likes_topic, name="likeguard.detect")  # type: ignore[arg-type]
    async def detect(stream: faust.Stream) -> None:
        await drive(stream, settings.likes_topic)

    @app.agent(accounts_topic, name="likeguard.accounts")  # type: ignore[arg-type]
    async def accounts(stream: faust.Stream) -> None:
        await drive(stream, settings.accounts_topic)

    swarm_feeds: list[SwarmFeed[EventT]] = []
    metrics.watch_merge(lambda: sum(feed.merge.held for feed in swarm_feeds))
    swarm_lock = asyncio.Lock()
    swarm_counts = MergeCounts(metrics)

    async def swarm_pump(feed: SwarmFeed[EventT], stream: faust.Stream) -> bool:
        """One batch of released likes through the stage; False when none was released."""
        async with swarm_lock:
            released = feed.release()
            forced = swarm_counts.observe(feed.merge)
            if forced:
                log.warning(
                    "swarm stage: holds more than %d likes (LIKEGUARD_SWARM_STAGE_MAX_HELD);"
                    " %d went on out of event-time order",
                    feed.merge.max_held,
                    forced,
                )
            if not released:
                return False
            with feed.now.paused():
                alerts = await swarm_runner.process([like for _, like in released])
                await asyncio.gather(*[await publish(alert) for alert in alerts])
                for record in feed.done(released):
                    await stream.ack(record)
            metrics.observe_swarm_stage(alerts, released[-1][1].ts, len(released))
            return True

    async def swarm_tick(feed: SwarmFeed[EventT], stream: faust.Stream) -> None:
        # Idle source partitions stop holding the merge back with time alone.
        while True:
            await asyncio.sleep(MERGE_TICK_SECONDS)
            if feed.merge.held:
                while await swarm_pump(feed, stream):
                    pass

    async def watch_source(feed: SwarmFeed[EventT]) -> None:
        # ListOffsets for every source partition, assigned here or not.
        tps = [TP(settings.likes_topic, partition) for partition in range(settings.partitions)]
        while True:
            await asyncio.sleep(SWARM_HIGHWATER_SECONDS)
            asked_at = time.time()
            try:
                offsets = await app.consumer.highwaters(*tps)
            except Exception as err:  # the broker or consumer is busy: the reports still count
                log.debug("swarm stage: no high watermarks from the broker: %s", err)
                continue
            feed.observe_source({tp.partition: offset for tp, offset in offsets.items()}, asked_at)

    @app.agent(swarm_topic, name="likeguard.swarm")  # type: ignore[arg-type]
    async def swarm(stream: faust.Stream) -> None:
        manual = cast(faust.Stream, stream.noack())
        feed = SwarmFeed[EventT](
            EventTimeMerge(
                idle_seconds=settings.swarm_stage_wait_seconds,
                behind_idle_seconds=settings.swarm_stage_wait_seconds,
                max_held=settings.swarm_stage_max_held,
                caught_up_seconds=SWARM_CAUGHT_UP_SECONDS,
            ),
            settings.partitions,
            settings.batch_size,
        )
        swarm_feeds[:] = [feed]
        ticker = asyncio.create_task(swarm_tick(feed, manual))
        watcher = asyncio.create_task(watch_source(feed))
        try:
            async for records in manual.noack_take(settings.batch_size, within=SWARM_TAKE_SECONDS):
                if ticker.done():  # a batch the ticker ran failed: crash, as without it
                    ticker.result()
                for record in records:
                    try:
                        chunk = decode_chunk(_raw(record.value))
                    except ValueError as err:  # only workers write here; never seen
                        log.error(
                            "swarm stage: skipped record at offset %s: %s",
                            record.message.offset,
                            err,
                        )
                        await manual.ack(record)
                        continue
                    for done_record in feed.add(record, chunk):
                        await manual.ack(done_record)
                while await swarm_pump(feed, manual):
                    pass
        finally:
            for task in (ticker, watcher):
                task.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await task

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def drop_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        for topic, feed in feeds.items():
            feed.revoke(tp.partition for tp in revoked if tp.topic == topic)
        for tp in revoked:
            if tp.topic == settings.likes_topic:
                processed.pop(tp.partition, None)  # its new owner reports it
        if any(tp.topic == settings.swarm_stage_topic for tp in revoked):
            # Not acked, so the stage's next owner (maybe this worker) reads them again.
            for swarm_feed in swarm_feeds:
                swarm_feed.reset()

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def checkpoint_models(sender: Any, **_: Any) -> None:
        await detection.close()
        await swarm_runner.close()

    app.detection = detection  # type: ignore[attr-defined]
    return app
