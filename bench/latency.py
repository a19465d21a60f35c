"""Event-to-alert latency of a live worker fed at a steady rate.

A stretch of the capture is re-published at a fixed rate, and each alert's latency is the
alert record's Kafka timestamp (set by the worker's producer when it publishes the alert) minus
the moment its trigger event (the record whose ``event_time`` the alert carries) was handed to
the broker: on a platform, where events are produced as they happen, that is the time from
"the event happened" to "the alert is out". A consumer thread also stamps each alert on
receipt, which adds the broker's delivery to a reader.

How event times are sent is the ``times`` argument of :func:`measure_latency`:

``"kept"`` (the benchmark's figure)
    Events keep their own times, so the detectors see the scenario's traffic as it was: the
    same likers per post within a minute, the same pairs for the swarm search. The send time
    of each trigger is looked up by its event time.
``"wall"`` (a stress figure)
    Every event's time is rewritten to the wall clock as it is sent (creation times move with
    it, so ages at the event are kept), and ``event_time`` itself is the send time. Hours of
    the scenario are then squeezed into the seconds of the run, so every post looks hundreds
    of times busier than it was, and the cross-account detectors (swarm above all: pairs per
    like grow with a post's likers within the sync window) pay for traffic no platform of the
    scenario's size has. The per-batch lag gauge is only meaningful in this mode.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.stack import (
    WORKER_MODULE,
    BenchError,
    BenchStack,
    Names,
    Process,
    free_port,
    scrape,
    stop_all,
    worker_figures,
)
from bench.stats import percentile
from schemas.records import Event, LikeEvent
from stream.capture import Placed, partition_key, read_capture

Progress = Callable[[str], None]

#: Fields that are points in time and move with ``ts`` (so ages at the event are kept).
TIME_FIELDS = ("created_at", "actor_created_at")


def rewrite_times(record: dict[str, Any], event: Event, now: float) -> dict[str, Any]:
    """``record`` with its event time set to ``now`` and its creation times shifted alike.

    >>> from schemas.records import AccountSnapshot
    >>> snap = AccountSnapshot("e1", "a1", ts=1000.0, created_at=400.0)
    >>> rewrite_times({"event_id": "e1", "ts": "1970-01-01T00:16:40Z"}, snap, 5000.0)
    {'event_id': 'e1', 'ts': 5000.0, 'created_at': 4400.0}
    """
    shift = now - event.ts
    out = dict(record)
    out["ts"] = round(now, 6)
    for name in TIME_FIELDS:
        value = getattr(event, name, None)
        if value is not None:
            out[name] = round(value + shift, 6)
    return out


def paced_schedule(start: float, count: int, per_second: float) -> Iterator[float]:
    """When each of ``count`` events is due, evenly spaced at ``per_second`` from ``start``.

    >>> list(paced_schedule(10.0, 3, 2.0))
    [10.0, 10.5, 11.0]
    """
    for n in range(count):
        yield start + n / per_second


@dataclass
class LatencyResult:
    #: "kept" (events sent with their own times) or "wall" (times rewritten to the send time).
    times: str
    per_second_target: float
    per_second_sent: float
    events: int
    #: Event-time span of the events sent (their own times), seconds.
    event_span_seconds: float
    alerts: int
    #: Alert record timestamp (worker published it) minus its trigger's send time, seconds.
    p50_seconds: float | None
    p99_seconds: float | None
    max_seconds: float | None
    #: Receipt by a consumer minus the trigger's send time, seconds.
    receive_p50_seconds: float | None
    receive_p99_seconds: float | None
    #: Alerts whose trigger was not among the events sent (none expected; not in the figures).
    unmatched: int
    #: Per finished batch: wall clock minus its newest record's send time (the worker's only
    #: with times "wall"; the bare agent's, from Kafka timestamps, in either mode).
    batches: int
    batch_lag_p50_seconds: float | None
    batch_lag_p99_seconds: float | None
    latencies: list[float] = field(default_factory=list)
    #: Per detector: alerts, p50 and p99 of the published latency (where the tail comes from).
    by_detector: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    worker_figures: dict[str, Any] = field(default_factory=dict)


class AlertReader(threading.Thread):
    """Reads an alerts topic from the beginning, stamping each record on receipt."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=200
        )
        partitions = self.consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise BenchError(f"alerts topic {topic} does not exist")
        self.consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        self.consumer.seek_to_beginning()
        self.records: list[tuple[float, float, dict[str, Any]]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                batches = self.consumer.poll(timeout_ms=100)
                received = time.time()
                for records in batches.values():
                    for record in records:
                        self.records.append(
                            (record.timestamp / 1000.0, received, json.loads(record.value))
                        )
        finally:
            self.consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def densest_slice(flags: Sequence[bool], size: int) -> int:
    """Start of the ``size``-long run of ``flags`` with the most true values (the first one).

    >>> densest_slice([False, True, False, True, True, True, False], 3)
    3
    """
    if size >= len(flags):
        return 0
    best = current = sum(flags[:size])
    start = 0
    for end in range(size, len(flags)):
        current += flags[end] - flags[end - size]
        if current > best:
            best, start = current, end - size + 1
    return start


def attack_accounts(truth: Path) -> set[str]:
    """Every account of every attack in a scenario's ``truth.json`` (empty if there is none)."""
    try:
        attacks = json.loads(truth.read_text())["attacks"]
    except (OSError, ValueError, KeyError):
        return set()
    return {account for attack in attacks for account in attack.get("accounts", ())}


def attack_slice(capture: Path, count: int) -> list[Placed]:
    """The ``count`` consecutive events of ``capture`` richest in attack likes.

    Latency can only be read off alerts, so the paced run replays the stretch of the scenario
    where attacks are busiest rather than its quiet first minutes.
    """
    events = [item for item in read_capture(capture) if isinstance(item, Placed)]
    attackers = attack_accounts(capture.parent / "truth.json")
    flags = [isinstance(p.event, LikeEvent) and p.event.actor_id in attackers for p in events]
    start = densest_slice(flags, count)
    return events[start : start + count]


def _processed(port: int) -> float:
    sample = scrape(port)
    return sample.events if sample is not None else 0.0


def _warm_up_event(now: float) -> tuple[str, bytes]:
    record = {
        "event_id": f"bench-warmup-{now}",
        "type": "account",
        "account_id": "bench-warmup",
        "ts": now,
        "created_at": now - 365 * 86400,
    }
    return "bench-warmup", json.dumps(record).encode()


def trigger_key(ts: float) -> float:
    """The lookup key of an event time: alerts carry it through JSON, rounded to microseconds.

    >>> trigger_key(1793491200.1234567) == trigger_key(1793491200.123457)
    True
    """
    return round(ts, 6)


def publish_paced(
    producer: KafkaProducer,
    topic: str,
    events: Iterable[Placed],
    per_second: float,
    rewrite: bool = True,
    sent_at: dict[float, float] | None = None,
) -> tuple[int, float]:
    """Send ``events`` at ``per_second``: stamped with the wall clock as they go out
    (``rewrite``), or as they are, noting in ``sent_at`` when each event time was first sent."""
    items = list(events)
    start = time.time()
    sent = 0
    for due, placed in zip(paced_schedule(start, len(items), per_second), items, strict=True):
        ahead = due - time.time()
        if ahead > 0.002:
            time.sleep(ahead)
        now = time.time()
        if rewrite:
            value = json.dumps(rewrite_times(json.loads(placed.payload), placed.event, now))
            payload = value.encode()
        else:
            payload = placed.payload
        if sent_at is not None:
            # A rewritten event's time is the send time itself (see rewrite_times).
            sent_at.setdefault(trigger_key(now if rewrite else placed.event.ts), now)
        key = partition_key(placed.event).encode()
        producer.send(topic, key=key, value=payload)
        sent += 1
    producer.flush()
    return sent, time.time() - start


class BatchLagSampler(threading.Thread):
    """Reads a consumer's ``likeguard_event_time_lag_seconds`` four times a second.

    The gauge is wall clock minus the newest event time of the last batch, set as the batch
    ends; with event times rewritten to send times it is the delay of a batch's freshest
    record from publish to processed. For the bare agent it is the transport alone. A reading
    is kept only when a new batch ended since the last one; polling faster would catch every
    batch but cost the worker CPU (each scrape renders all its metrics).
    """

    def __init__(self, port: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.every = every
        self.lags: list[float] = []
        self._halt = threading.Event()

    def run(self) -> None:
        seen = 0.0
        while not self._halt.wait(self.every):
            sample = scrape(self.port)
            if sample is not None and sample.last_processed != seen:
                seen = sample.last_processed
                self.lags.append(sample.lag)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def measure_latency(
    stack: BenchStack,
    names: Names,
    capture: Path,
    per_second: float,
    seconds: float,
    progress: Progress,
    module: str = WORKER_MODULE,
    times: str = "kept",
) -> LatencyResult:
    """One consumer on an empty topic; a paced publisher; alerts read as they come.

    With ``module=BARE_MODULE`` there are no alerts: only the per-batch lag is measured, the
    floor that Faust and the broker put under any alert latency (its lag gauge reads the
    records' Kafka timestamps, so ``times`` does not matter for it).
    """
    if times not in ("kept", "wall"):
        raise ValueError(f"times must be 'kept' or 'wall', not {times!r}")
    count = max(1, int(per_second * seconds))
    events = attack_slice(capture, count)
    created = stack.likeguard(names, "topics", timeout=120)  # 4 partitions, before any send
    if created.returncode != 0:
        raise BenchError(f"likeguard topics failed:\n{created.stderr[-2000:]}")
    port = free_port()
    args = ("worker", "--loglevel", "warning") if module == WORKER_MODULE else ()
    consumer: Process = stack.spawn(
        module,
        names,
        stack.work_dir / f"{names.prefix}-0.log",
        *args,
        LIKEGUARD_METRICS_PORT=str(port),
    )
    bootstrap = stack.settings.bootstrap_servers
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    reader: AlertReader | None = None
    sampler = BatchLagSampler(port)
    sent_at: dict[float, float] = {}
    figures: dict[str, Any] = {}
    try:
        # One warm-up record proves the consumer joined its group, so the join (half the
        # session timeout on Tansu) is not counted as latency.
        warm = 0.0
        deadline = time.monotonic() + 120
        while warm == 0:
            if not consumer.alive() or consumer.failed():
                raise BenchError(f"{names.prefix} failed:\n{consumer.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"no warm-up record processed:\n{consumer.log_tail()}")
            key, value = _warm_up_event(time.time())
            producer.send(names.likes_topic, key=key.encode(), value=value)
            producer.flush()
            time.sleep(1.0)
            warm = _processed(port)
        time.sleep(1.0)  # warm-up records still in flight
        warm = _processed(port)
        if module == WORKER_MODULE:
            reader = AlertReader(bootstrap, names.alerts_topic)
            reader.start()
        # The worker's lag gauge is wall clock minus event time (meaningful with rewritten
        # times only); the bare agent's uses the records' Kafka timestamps (send times).
        if times == "wall" or module != WORKER_MODULE:
            sampler.start()
        progress(
            f"  {names.prefix}: sending {len(events):,} events at {per_second:,.0f}/s "
            f"({'own event times' if times == 'kept' else 'event times set to the send time'})"
        )
        sent, took = publish_paced(
            producer,
            names.likes_topic,
            events,
            per_second,
            rewrite=times == "wall",
            sent_at=sent_at,
        )
        # Let the consumer finish the tail, then give the alerts a moment to arrive.
        deadline = time.monotonic() + 120
        while _processed(port) < warm + sent:
            if time.monotonic() > deadline or consumer.failed():
                raise BenchError(f"paced events not processed:\n{consumer.log_tail()}")
            time.sleep(0.2)
        time.sleep(2.0)
        figures = worker_figures(port)
    finally:
        producer.close()
        if reader is not None:
            reader.stop()
        if sampler.is_alive():
            sampler.stop()
        stop_all([consumer.popen])
    records = reader.records if reader is not None else []
    published: list[float] = []
    received: list[float] = []
    per_detector: dict[str, list[float]] = {}
    unmatched = 0
    for ts, at, alert in records:
        origin = sent_at.get(trigger_key(alert["event_time"]))
        if origin is None:
            unmatched += 1
            continue
        published.append(ts - origin)
        received.append(at - origin)
        per_detector.setdefault(str(alert.get("detector")), []).append(ts - origin)

    def pct(values: list[float], q: float) -> float | None:
        return percentile(values, q) if values else None

    return LatencyResult(
        times=times,
        per_second_target=per_second,
        per_second_sent=sent / took if took > 0 else 0.0,
        events=sent,
        event_span_seconds=events[-1].event.ts - events[0].event.ts if events else 0.0,
        alerts=len(published),
        unmatched=unmatched,
        p50_seconds=pct(published, 50),
        p99_seconds=pct(published, 99),
        max_seconds=max(published) if published else None,
        receive_p50_seconds=pct(received, 50),
        receive_p99_seconds=pct(received, 99),
        batches=len(sampler.lags),
        batch_lag_p50_seconds=pct(sampler.lags, 50),
        batch_lag_p99_seconds=pct(sampler.lags, 99),
        latencies=sorted(published),
        by_detector={
            name: (len(values), percentile(values, 50), percentile(values, 99))
            for name, values in sorted(per_detector.items())
        },
        worker_figures=figures,
    )
