"""A per-worker event-time merge of the partitions a worker reads (no Kafka, no Faust).

``likeguard replay`` runs a capture in event-time order
(:func:`stream.capture.merge_by_event_time`). A live worker reads several partitions that
stand at different event times; fed in arrival order, the detectors that look across
accounts (a post's likers, an author's fans) would see one partition's events before older
ones of another and decide borderline cases unlike replay.
:class:`EventTimeMerge` holds the records a worker has taken and lets them go in
``(ts, partition, offset)`` order, as far as every partition that can still deliver older
events has got: up to the smallest *watermark* (highest event time seen) of the partitions that
are not idle.

A partition is idle, and holds nothing back, when it is *caught up* (every offset below the
broker's high watermark has been delivered) or when it has been *silent* (no record and no
rise of its high watermark) for ``idle_seconds``. A partition known to be *behind* (it has
delivered records, and the broker's high watermark says more are there) is not idle after
``idle_seconds`` of silence but only after ``behind_idle_seconds``: its records exist, and
Kafka consumers do not deliver partitions evenly (a worker reading a backlog was seen to get
one partition whole while the three others stayed silent for over half a second), so letting
the others go would process them out of order. Records whose event time cannot be read
(bad JSON) are released at once, ahead of everything, so they reach the dead-letter path
without waiting. Above ``max_held`` records the oldest are released anyway (and counted), so a
partition with a backlog, or one that stalls, never makes memory grow without bound.

The clock is the caller's: every method that depends on time takes ``now`` (seconds, any
monotonic origin), which keeps the class deterministic under test.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

import msgspec

from schemas.validate import InvalidEvent, parse_timestamp

T = TypeVar("T")


class WaitingClock:
    """Seconds (any monotonic origin) that stand still while the caller waits on work
    downstream of a merge: a partition is not silent because detection (or Redis) was slow.

    >>> ticks = iter([0.0, 1.0, 3.0, 3.5])
    >>> clock = WaitingClock(lambda: next(ticks))
    >>> clock()
    0.0
    >>> clock.waited(1.5)
    >>> clock(), clock(), clock()
    (-0.5, 1.5, 2.0)
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.raw = clock
        self._waited = 0.0

    def __call__(self) -> float:
        return self.raw() - self._waited

    def waited(self, seconds: float) -> None:
        """``seconds`` went to work downstream: they do not count."""
        self._waited += seconds

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The time spent in the ``with`` block does not count.

        >>> ticks = iter([0.0, 2.0, 5.0, 6.0])
        >>> clock = WaitingClock(lambda: next(ticks))
        >>> with clock.paused():
        ...     pass
        >>> clock(), clock()
        (3.0, 4.0)
        """
        started = self.raw()
        try:
            yield
        finally:
            self.waited(self.raw() - started)


class _Ts(msgspec.Struct):
    ts: float | str | None = None


_ts_decoder: Final = msgspec.json.Decoder(_Ts)


def event_time(raw: bytes) -> float | None:
    """The event time of a raw record value, or ``None`` when it cannot be read.

    Decodes only the ``ts`` field (msgspec skips the rest at C speed); an RFC 3339 string is
    converted as the validator does. ``None`` means the record is not a valid event: the
    detection process will reject it with the exact reason.

    >>> event_time(b'{"type": "like", "ts": 1793491200.5, "actor_id": "a"}')
    1793491200.5
    >>> event_time(b'{"ts": "2026-11-01T00:00:00Z"}')
    1793491200.0
    >>> event_time(b'not json') is None, event_time(b'{"ts": true}') is None
    (True, True)
    >>> event_time(b'[1, 2]') is None, event_time(b'{"type": "like"}') is None
    (True, True)
    """
    try:
        value = _ts_decoder.decode(raw).ts
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except InvalidEvent:
        return None


@dataclass(slots=True)
class _Partition:
    #: Highest event time delivered (None: nothing delivered since assignment).
    watermark: float | None = None
    #: Offset after the last record delivered (None: nothing delivered since assignment).
    next_offset: int | None = None
    #: Broker's high watermark as last observed (None: not known yet).
    highwater: int | None = None
    #: When the partition last delivered a record, had its high watermark rise, or was assigned.
    active_at: float = 0.0
    #: When the high watermark was last observed (as of when it was true, see ``as_of``).
    highwater_at: float = 0.0


class EventTimeMerge(Generic[T]):
    """Holds records of several partitions and releases them in event-time order.

    Parameters
    ----------
    idle_seconds
        A partition that has neither delivered a record nor shown a higher high watermark for
        this long stops holding the merge back.
    behind_idle_seconds
        The same for a partition known to have undelivered records (its delivered offset is
        below the high watermark); by default ten times ``idle_seconds``. It bounds the wait
        for a partition whose last offsets are never delivered (transaction markers).
    max_held
        When more records than this are held, the oldest are released regardless of the
        watermark (counted in :attr:`forced`).
    caught_up_seconds
        When given, a caught-up partition holds nothing back only this long after its high
        watermark was observed (``as_of``); after that it counts as silent. For a merge fed
        second-hand (the swarm stage), where "caught up" is what a worker reported, the
        report may have waited in a topic, and the worker may have died since.

    Examples
    --------
    Partition 1 is behind partition 0, so partition 0's later event waits for it:

    >>> merge = EventTimeMerge[str](idle_seconds=1.0, max_held=100)
    >>> merge.assign([0, 1], now=0.0)
    0
    >>> merge.add(0, offset=0, ts=10.0, item="a", now=0.0)
    >>> merge.add(0, offset=1, ts=30.0, item="b", now=0.0)
    >>> merge.add(1, offset=0, ts=20.0, item="c", now=0.0)
    >>> merge.release(now=0.1)
    ['a', 'c']
    >>> merge.held
    1

    Once partition 1 is caught up with the broker it no longer holds anything back:

    >>> merge.observe_highwater(1, 1, now=0.2)
    >>> merge.release(now=0.2)
    ['b']

    A record without a readable event time goes out at once:

    >>> merge.add(1, offset=1, ts=None, item="bad", now=0.3)
    >>> merge.release(now=0.3)
    ['bad']
    """

    def __init__(
        self,
        *,
        idle_seconds: float,
        max_held: int,
        behind_idle_seconds: float | None = None,
        caught_up_seconds: float | None = None,
    ) -> None:
        if max_held < 1:
            raise ValueError("max_held must be at least 1")
        self.idle_seconds = idle_seconds
        self.behind_idle_seconds = (
            10 * idle_seconds if behind_idle_seconds is None else behind_idle_seconds
        )
        self.max_held = max_held
        self.caught_up_seconds = caught_up_seconds
        self._partitions: dict[int, _Partition] = {}
        # (ts, partition, offset, sequence, item); the sequence keeps items from being compared.
        self._heap: list[tuple[float, int, int, int, T]] = []
        # Records without an event time: (partition, item), released first, in arrival order.
        self._undated: deque[tuple[int, T]] = deque()
        self._sequence = itertools.count()
        #: Records released by the ``max_held`` cap before the watermark allowed it.
        self.forced = 0
        #: Records that arrived older than a record already released (out of order anyway).
        self.late = 0
        #: Records dropped because their partition was revoked (they are redelivered elsewhere).
        self.dropped = 0
        self._released_ts: float | None = None

    # ------------------------------------------------------------------ partitions

    @property
    def partitions(self) -> frozenset[int]:
        """The partitions currently assigned."""
        return frozenset(self._partitions)

    def assign(self, partitions: Iterable[int], now: float) -> int:
        """Make ``partitions`` the assigned set; returns how many held records were dropped.

        New partitions start silent at ``now``. Partitions no longer assigned (a rebalance moved
        them) lose their held records: those were never acked, so the group redelivers them to
        the partition's new owner.

        >>> merge = EventTimeMerge[str](idle_seconds=1.0, max_held=10)
        >>> merge.assign([0, 1], now=0.0)
        0
        >>> merge.add(1, offset=5, ts=1.0, item="x", now=0.0)
        >>> merge.assign([0], now=0.5), merge.held, sorted(merge.partitions)
        (1, 0, [0])
        """
        wanted = set(partitions)
        for partition in wanted - self._partitions.keys():
            self._partitions[partition] = _Partition(active_at=now)
        revoked = self._partitions.keys() - wanted
        if not revoked:
            return 0
        return self.revoke(revoked)

    def revoke(self, partitions: Iterable[int]) -> int:
        """Forget ``partitions`` and drop their held records; returns how many were dropped."""
        gone = set(partitions) & self._partitions.keys()
        if not gone:
            return 0
        for partition in gone:
            del self._partitions[partition]
        before = self.held
        self._heap = [entry for entry in self._heap if entry[1] not in gone]
        heapq.heapify(self._heap)
        self._undated = deque(entry for entry in self._undated if entry[0] not in gone)
        dropped = before - self.held
        self.dropped += dropped
        return dropped

    def observe_highwater(
        self, partition: int, highwater: int | None, now: float, as_of: float | None = None
    ) -> None:
        """The broker's high watermark of ``partition`` (offset after its last record), as it
        was at ``as_of`` (default ``now``; earlier for a report that took time to arrive).

        A rise means new records are on their way: the partition counts as active again. A
        high watermark never falls, so a lower one is an older view (another source's, or a
        report that waited) and changes nothing.

        >>> merge = EventTimeMerge[str](idle_seconds=1.0, max_held=10)
        >>> merge.observe_highwater(0, 10, now=1.0)  # not assigned: ignored
        >>> merge.assign([0], now=0.0)
        0
        >>> merge.observe_highwater(0, 10, now=1.0)
        >>> merge.observe_highwater(0, 7, now=2.0)
        >>> merge._partitions[0].highwater, merge._partitions[0].highwater_at
        (10, 1.0)
        """
        state = self._partitions.get(partition)
        if state is None or highwater is None:
            return
        if state.highwater is not None and highwater < state.highwater:
            return
        if state.highwater is None or highwater > state.highwater:
            state.active_at = max(state.active_at, now)
        state.highwater = highwater
        state.highwater_at = max(state.highwater_at, now if as_of is None else as_of)

    def idle(self, partition: int, now: float) -> bool:
        """Whether ``partition`` is caught up or silent, so it holds nothing back.

        >>> merge = EventTimeMerge[str](idle_seconds=1.0, max_held=10)
        >>> merge.assign([0], now=0.0)
        0
        >>> merge.idle(0, now=0.5), merge.idle(0, now=1.0)
        (False, True)
        >>> merge.add(0, offset=3, ts=5.0, item="x", now=1.0)
        >>> merge.observe_highwater(0, 10, now=1.0)
        >>> merge.idle(0, now=1.5)
        False

        Offsets 4 to 9 are on the broker, so silence counts only after ``behind_idle_seconds``:

        >>> merge.idle(0, now=2.5), merge.idle(0, now=11.0)
        (False, True)
        >>> merge.add(0, offset=9, ts=6.0, item="y", now=11.0)
        >>> merge.idle(0, now=11.0)
        True
        """
        state = self._partitions[partition]
        silent = now - state.active_at
        if state.highwater is not None and state.next_offset is not None:
            if state.next_offset >= state.highwater:
                if self.caught_up_seconds is None:
                    return True
                if now - state.highwater_at < self.caught_up_seconds:
                    return True
                # Caught up as of a report too old to trust: its source may be gone since.
                return silent >= self.idle_seconds
            return silent >= self.behind_idle_seconds
        return silent >= self.idle_seconds

    # ------------------------------------------------------------------ records

    @property
    def held(self) -> int:
        """Records held, not yet released."""
        return len(self._heap) + len(self._undated)

    def add(self, partition: int, offset: int, ts: float | None, item: T, now: float) -> None:
        """Hold ``item``, read from ``partition`` at ``offset``, with event time ``ts``.

        ``ts`` is ``None`` for a record whose event time cannot be read; it is released at the
        next :meth:`release`. A partition not assigned yet is assigned by its first record.
        """
        state = self._delivered(partition, offset + 1, now)
        if ts is None:
            self._undated.append((partition, item))
            return
        if state.watermark is None or ts > state.watermark:
            state.watermark = ts
        if self._released_ts is not None and ts < self._released_ts:
            self.late += 1
        heapq.heappush(self._heap, (ts, partition, offset, next(self._sequence), item))

    def advance(self, partition: int, next_offset: int, ts: float | None, now: float) -> None:
        """``partition`` has delivered everything below ``next_offset``, up to event time
        ``ts``, without records to hold (the swarm stage learns of the unlikes and snapshots of
        a source partition this way). A partition not assigned yet is assigned by it.

        >>> merge = EventTimeMerge[str](idle_seconds=9.0, max_held=10)
        >>> merge.add(0, offset=0, ts=5.0, item="a", now=0.0)
        >>> merge.add(1, offset=0, ts=1.0, item="b", now=0.0)
        >>> merge.release(now=0.0)
        ['b']
        >>> merge.advance(1, next_offset=4, ts=7.0, now=0.1)
        >>> merge.release(now=0.1)
        ['a']
        """
        state = self._delivered(partition, next_offset, now)
        if ts is not None and (state.watermark is None or ts > state.watermark):
            state.watermark = ts

    def _delivered(self, partition: int, next_offset: int, now: float) -> _Partition:
        # A partition not assigned yet is assigned by what it delivers.
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = _Partition()
        state.active_at = max(state.active_at, now)
        state.next_offset = max(next_offset, state.next_offset or 0)
        return state

    def watermark(self, now: float) -> float | None:
        """Event time up to which every held record may go: the smallest watermark of the
        partitions that are not idle (``inf`` when all are idle; ``None`` when a non-idle
        partition has delivered nothing yet)."""
        low = float("inf")
        for partition, state in self._partitions.items():
            if self.idle(partition, now):
                continue
            if state.watermark is None:
                return None
            low = min(low, state.watermark)
        return low

    def release(self, now: float, limit: int | None = None) -> list[T]:
        """The held records that may go, oldest first: undated ones, then every record with
        ``ts`` at most :meth:`watermark` in ``(ts, partition, offset)`` order, then, if more than
        ``max_held`` are still held, the oldest of them. At most ``limit`` records.

        >>> merge = EventTimeMerge[int](idle_seconds=9.0, max_held=2)
        >>> merge.assign([0, 1], now=0.0)
        0
        >>> for offset in range(4):
        ...     merge.add(0, offset=offset, ts=float(offset), item=offset, now=0.0)
        >>> merge.release(now=0.0), merge.forced, merge.held
        ([0, 1], 2, 2)
        """
        cap = self.held if limit is None else max(0, limit)
        out: list[T] = []
        while self._undated and len(out) < cap:
            out.append(self._undated.popleft()[1])
        heap = self._heap
        low = self.watermark(now)
        if low is not None:
            while heap and len(out) < cap and heap[0][0] <= low:
                out.append(self._pop())
        while len(heap) > self.max_held and len(out) < cap:
            out.append(self._pop())
            self.forced += 1
        return out

    def _pop(self) -> T:
        ts, _, _, _, item = heapq.heappop(self._heap)
        if self._released_ts is None or ts > self._released_ts:
            self._released_ts = ts
        return item
