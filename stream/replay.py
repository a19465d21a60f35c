"""Offline driver: captured event logs through the very same pipeline as the live worker.

``likeguard replay`` reads capture files in event-time order, feeds :class:`Pipeline` in
batches, writes alerts as JSON Lines, sets bad lines aside in a rejects file, shows progress
on a terminal and a summary at the end. ``--to-kafka`` instead re-publishes the capture to a
topic, paced like the original or faster, to test a live pipeline on a recorded day.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol, TextIO

from detectors.pipeline import Pipeline
from schemas.records import Event
from stream.capture import Placed, Reject, merge_by_event_time, partition_key


@dataclass
class ReplaySummary:
    """What a replay did; printed to standard error at the end."""

    files: int = 0
    events: int = 0
    rejects: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    out_of_order: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    seconds: float = 0.0
    rejects_path: Path | None = None

    def lines(self) -> list[str]:
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        span = ""
        if self.first_ts is not None and self.last_ts is not None:
            span = f", event time {_utc(self.first_ts)} .. {_utc(self.last_ts)}"
        out = [
            f"replayed {self.events:,} events from {self.files} file(s) "
            f"in {self.seconds:.1f} s ({rate:,.0f} events/s){span}",
        ]
        if self.outcomes:
            parts = ", ".join(f"{t} {o}: {n:,}" for (t, o), n in sorted(self.outcomes.items()))
            out.append(f"  outcomes: {parts}")
        total_alerts = sum(self.alerts.values())
        by_detector = ", ".join(f"{d} {n:,}" for d, n in sorted(self.alerts.items()))
        out.append(f"  alerts: {total_alerts:,}" + (f" ({by_detector})" if by_detector else ""))
        n_rejects = sum(self.rejects.values())
        if n_rejects:
            reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(self.rejects.items()))
            out.append(f"  rejected lines: {n_rejects:,} ({reasons}) -> {self.rejects_path}")
        else:
            out.append("  rejected lines: 0")
        if self.out_of_order:
            out.append(
                f"  {self.out_of_order:,} events were further out of order than the reorder "
                "buffer; they were processed at their own event time"
            )
        return out


class Progress:
    """A one-line, self-overwriting progress display; silent when not on a terminal."""

    def __init__(self, stream: TextIO, enabled: bool | None = None, every: float = 0.5) -> None:
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.every = every
        self._next = 0.0
        self._start = time.monotonic()

    def update(self, summary: ReplaySummary, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self._next and not force:
            return
        self._next = now + self.every
        elapsed = max(now - self._start, 1e-9)
        at = f"  at {_utc(summary.last_ts)}" if summary.last_ts is not None else ""
        self.stream.write(
            f"\rreplay: {summary.events:,} events  {summary.events / elapsed:,.0f}/s  "
            f"{sum(summary.alerts.values()):,} alerts  "
            f"{sum(summary.rejects.values()):,} rejects{at}   "
        )
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


class RejectsFile:
    """Writes rejects as JSON Lines, creating the file only when the first one arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def write(self, reject: Reject) -> None:
        if self._handle is None:
            self._handle = self.path.open("w", encoding="utf-8")
        self._handle.write(reject.to_json() + "\n")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def _events(
    items: Iterable[Placed | Reject], summary: ReplaySummary, rejects: RejectsFile
) -> Iterator[Placed]:
    """Valid events, in order; rejects go to the file and the summary on the way."""
    for item in items:
        if isinstance(item, Reject):
            summary.rejects[item.reason] += 1
            rejects.write(item)
            continue
        if summary.last_ts is not None and item.ts < summary.last_ts:
            summary.out_of_order += 1
        else:
            summary.last_ts = item.ts
        if summary.first_ts is None:
            summary.first_ts = item.ts
        summary.events += 1
        yield item


def _batches(items: Iterator[Placed], size: int) -> Iterator[list[Event]]:
    batch: list[Event] = []
    for placed in items:
        batch.append(placed.event)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def replay(
    paths: list[Path],
    pipeline: Pipeline,
    out: TextIO,
    rejects: RejectsFile,
    batch_size: int = 1000,
    reorder_buffer: int = 100_000,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Run ``paths`` through ``pipeline`` in event-time order; alerts go to ``out``.

    Batches of ``batch_size`` valid events, in event-time order (rejects go to ``rejects``).
    """
    summary = ReplaySummary(files=len(paths), rejects_path=rejects.path)
    started = time.monotonic()
    events = _events(merge_by_event_time(paths, reorder_buffer), summary, rejects)
    try:
        for batch in _batches(events, batch_size):
            result = pipeline.process(batch)
            summary.outcomes.update(result.outcomes)
            for alert in result.alerts:
                summary.alerts[alert.detector] += 1
                out.write(alert.to_json() + "\n")
            if progress:
                progress.update(summary)
        pipeline.close()
    finally:
        rejects.close()
        out.flush()
        if progress:
            progress.update(summary, force=True)
            progress.done()
    summary.seconds = time.monotonic() - started
    return summary


class EventSink(Protocol):
    """Where :func:`publish` sends events: a Kafka topic in production."""

    def send(self, key: str, value: bytes) -> None: ...

    def flush(self) -> None: ...


def publish(
    paths: list[Path],
    producer: EventSink,
    speed: float | None,
    rejects: RejectsFile,
    reorder_buffer: int = 100_000,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplaySummary:
    """Re-publish a capture in event-time order.

    ``speed`` 1.0 keeps the original pacing, 10.0 is ten times faster, ``None`` is as fast as
    the broker takes it. Events keep their exact payload bytes; keys are the account whose
    windows they touch (actor for likes), as the live producers key them.
    """
    summary = ReplaySummary(files=len(paths), rejects_path=rejects.path)
    started = clock()
    first_ts: float | None = None
    try:
        for placed in _events(merge_by_event_time(paths, reorder_buffer), summary, rejects):
            if speed is not None:
                if first_ts is None:
                    first_ts = placed.ts
                due = started + (placed.ts - first_ts) / speed
                delay = due - clock()
                if delay > 0:
                    sleep(delay)
            producer.send(partition_key(placed.event), placed.payload)
            if progress:
                progress.update(summary)
        producer.flush()
    finally:
        rejects.close()
        if progress:
            progress.update(summary, force=True)
            progress.done()
    summary.seconds = clock() - started
    return summary


class KafkaSink:
    """A kafka-python producer bound to one topic (acks=all; :meth:`flush` waits for them)."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        from kafka import KafkaProducer

        self.topic = topic
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            linger_ms=5,
            batch_size=256 * 1024,
            max_in_flight_requests_per_connection=1,  # keep per-key order on retries
            retries=5,
        )
        self.sent = 0

    def send(self, key: str, value: bytes) -> None:
        self._producer.send(self.topic, key=key.encode("utf-8"), value=value)
        self.sent += 1

    def flush(self) -> None:
        self._producer.flush()

    def close(self) -> None:
        self._producer.close()


def _utc(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def default_rejects_path(out: str | None) -> Path:
    """Beside the output file, or in the working directory when alerts go to stdout."""
    if out and out != "-":
        return Path(f"{out}.rejects.jsonl")
    return Path("likeguard-replay.rejects.jsonl")


def print_summary(summary: ReplaySummary, stream: TextIO = sys.stderr) -> None:
    for line in summary.lines():
        print(line, file=stream)
