"""Reading capture files: JSON Lines, plain or gzip, raw events or ``kcat -C -J`` envelopes.

Every line becomes either an event (with its place: file and line) or a :class:`Reject` that
says why; nothing is dropped silently. :func:`merge_by_event_time` interleaves several files
in event-time order with a bounded reorder buffer, so a capture of a day needs memory for the
buffer, not for the day.
"""

from __future__ import annotations

import base64
import gzip
import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from schemas._fastpath import fast_parse
from schemas.records import Event, LikeEvent
from schemas.validate import InvalidEvent, decode_json, parse_event

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class Reject:
    """A line that is not a valid event, kept with its reason and its exact bytes."""

    source: str
    line: int
    reason: str
    error: str
    raw: bytes

    def to_json(self) -> str:
        record: dict[str, Any] = {
            "source": self.source,
            "line": self.line,
            "reason": self.reason,
            "error": self.error,
        }
        try:
            record["raw"] = self.raw.decode("utf-8")
        except UnicodeDecodeError:
            record["raw_base64"] = base64.b64encode(self.raw).decode("ascii")
        return json.dumps(record, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Placed:
    """A valid event and where it came from; orders by (event time, file, line)."""

    ts: float
    file_index: int
    line: int
    event: Event
    payload: bytes

    def sort_key(self) -> tuple[float, int, int]:
        return (self.ts, self.file_index, self.line)


def open_capture(path: Path) -> IO[bytes]:
    """Open a capture for binary reading, gunzipping when the file starts with the gzip magic."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == GZIP_MAGIC:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def parse_line(line: bytes) -> tuple[Event, bytes]:
    """One capture line to an event and its payload bytes; unwraps a ``kcat -C -J`` envelope."""
    if b'"payload"' not in line:  # not a kcat envelope: try the fast path first
        event = fast_parse(line)
        if event is not None:
            return event, line
    obj = decode_json(line)
    if isinstance(obj, dict) and "payload" in obj and ("topic" in obj or "offset" in obj):
        payload = obj["payload"]
        if payload is None:
            raise InvalidEvent("missing_field", "kcat envelope has a null payload", "payload")
        if not isinstance(payload, str):
            raise InvalidEvent("wrong_type", "kcat envelope payload must be a string", "payload")
        return parse_event(payload), payload.encode("utf-8")
    return parse_event(obj), line


def read_capture(path: Path, file_index: int = 0) -> Iterator[Placed | Reject]:
    """Every line of ``path`` as a :class:`Placed` event or a :class:`Reject` (blank lines skip)."""
    source = str(path)
    with open_capture(path) as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if not stripped:
                continue
            try:
                event, payload = parse_line(stripped)
            except InvalidEvent as err:
                yield Reject(source, number, err.reason, str(err), stripped)
                continue
            yield Placed(event.ts, file_index, number, event, payload)


def reorder(items: Iterable[Placed | Reject], buffer: int) -> Iterator[Placed | Reject]:
    """Sort a nearly sorted stream with a heap of ``buffer`` events; rejects pass straight on."""
    heap: list[tuple[tuple[float, int, int], Placed]] = []
    for item in items:
        if isinstance(item, Reject):
            yield item
            continue
        heapq.heappush(heap, (item.sort_key(), item))
        if len(heap) > buffer:
            yield heapq.heappop(heap)[1]
    while heap:
        yield heapq.heappop(heap)[1]


def merge_by_event_time(
    paths: list[Path], reorder_buffer: int = 100_000
) -> Iterator[Placed | Reject]:
    """All files' events in event-time order (ties: file order, then line order)."""
    streams = [reorder(read_capture(p, i), reorder_buffer) for i, p in enumerate(paths)]

    def key(item: Placed | Reject) -> tuple[float, int, int]:
        # Rejects carry no event time: let them through as soon as they are read.
        return (float("-inf"), 0, 0) if isinstance(item, Reject) else item.sort_key()

    return heapq.merge(*streams, key=key)


def partition_key(event: Event) -> str:
    """The Kafka key a producer uses for ``event``: the account whose windows it touches."""
    if isinstance(event, LikeEvent):
        return event.actor_id
    if event.type == "account":
        return event.account_id
    return event.author_id
