"""The swarm stage of the live path: swarm detection in one event-time order for all workers.

Swarm findings depend on the order of the likes across accounts (a post's likers, pairs,
groups), and in a scaled-out deployment those accounts are read by different workers. Each
worker's detection therefore runs the pipeline without the swarm detector and forwards, per
batch and per source partition, the likes it counted to a one-partition internal topic
(``Settings.swarm_stage_topic``), with how far the partition has got (next offset, the
batch's newest event time, the broker's high watermark as the worker last saw it); the stage
also asks the broker for the source partitions' high watermarks itself, so a dead worker's
last word does not pass for its partitions' state for long. The consumer group gives
that partition to exactly one worker (another takes it over on a rebalance); its swarm agent
puts the forwarded likes through an :class:`~stream.merge.EventTimeMerge` keyed by *source*
partition and runs :class:`~detectors.swarm_stage.SwarmStage` on what it releases: the likes
of all workers in ``(ts, partition, offset)`` order, the order ``likeguard replay`` uses. Two
workers then find the same groups, with the same alert ids, as one worker and as replay.

A forwarded record is acked when all its likes have been through the stage and their alerts
were acknowledged by the broker. A crash before that redelivers it; a worker that crashed
before acking its ``likes`` batch forwards it again. Either way likes reach the stage twice,
and a like the stage has seen adds no evidence and re-reports the groups it triggered under
the same alert ids (``detectors/swarm.py``), so nothing is lost or counted twice.

The wire format (JSON; internal, not part of DESIGN.md's contract)::

    {"partition": 2, "next_offset": 1041, "newest": 1793491260.5, "highwater": 5000,
     "sent_at": 1793491262.1,
     "likes": [[offset, ts, event_id, actor_id, post_id, author_id, dwell_ms], ...]}
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

import msgspec

from detectors.windows import WindowCounts
from schemas.records import LikeEvent
from stream.merge import EventTimeMerge, WaitingClock

R = TypeVar("R")


class ForwardedLike(msgspec.Struct, array_like=True, frozen=True):
    """What the stage needs of a like, where it was read, and the ``actor_likes`` counts
    (status and one count per window length) the worker's pipeline gave it."""

    offset: int
    ts: float
    event_id: str
    actor_id: str
    post_id: str
    author_id: str
    dwell_ms: int | None
    # Defaults: a record of a worker from before the stage ran new_account_spike and
    # fan_imbalance (a rolling upgrade) still decodes; its likes count as uncounted.
    actor_created_at: float | None = None
    status: int | None = None
    counts: tuple[int, ...] = ()

    def event(self) -> LikeEvent:
        return LikeEvent(
            self.event_id,
            "like",
            self.actor_id,
            self.post_id,
            self.author_id,
            self.ts,
            actor_created_at=self.actor_created_at,
            dwell_ms=self.dwell_ms,
        )

    def window(self) -> WindowCounts | None:
        """The like's ``actor_likes`` counts, or ``None`` when the worker sent none."""
        return None if self.status is None else WindowCounts(self.status, self.counts)


class Chunk(msgspec.Struct, frozen=True):
    """One forwarded record: a source partition's likes of one batch, and its progress."""

    partition: int
    #: The offset after the partition's last record in the batch (likes or not).
    next_offset: int
    #: Event time up to which the partition has delivered: the newest of the whole batch,
    #: which left the worker's merge in event-time order (``None``: no record had one).
    newest: float | None
    #: The broker's high watermark of the partition as the forwarding worker last saw it.
    highwater: int | None
    #: Wall-clock time (unix seconds) the worker sent the record: how old ``highwater`` is.
    sent_at: float
    likes: list[ForwardedLike]


class _ChunkOut(msgspec.Struct):
    partition: int
    next_offset: int
    newest: float | None
    highwater: int | None
    sent_at: float
    likes: msgspec.Raw


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Chunk)


def encode_likes(likes: Iterable[tuple[int, LikeEvent, WindowCounts | None]]) -> bytes:
    """The ``likes`` part of a chunk: ``(offset, like, actor_likes counts)`` of one source
    partition.

    >>> like = LikeEvent("e1", "like", "u1", "p1", "a1", 10.5, dwell_ms=300)
    >>> encode_likes([(7, like, WindowCounts(1, (1, 4)))])
    b'[[7,10.5,"e1","u1","p1","a1",300,null,1,[1,4]]]'
    """
    return _encoder.encode(
        [
            ForwardedLike(
                offset,
                e.ts,
                e.event_id,
                e.actor_id,
                e.post_id,
                e.author_id,
                e.dwell_ms,
                e.actor_created_at,
                None if window is None else window.status,
                () if window is None else window.counts,
            )
            for offset, e, window in likes
        ]
    )


def encode_chunk(
    partition: int,
    next_offset: int,
    newest: float | None,
    highwater: int | None,
    likes: bytes,
    sent_at: float | None = None,
) -> bytes:
    """A forwarded record; ``likes`` comes from :func:`encode_likes`, ``sent_at`` defaults
    to now.

    >>> raw = encode_chunk(2, 8, 10.5, 9, encode_likes([]), sent_at=100.0)
    >>> decode_chunk(raw)
    Chunk(partition=2, next_offset=8, newest=10.5, highwater=9, sent_at=100.0, likes=[])
    """
    sent = time.time() if sent_at is None else sent_at
    return _encoder.encode(
        _ChunkOut(partition, next_offset, newest, highwater, sent, msgspec.Raw(likes))
    )


def decode_chunk(raw: bytes) -> Chunk:
    """A forwarded record; :class:`ValueError` when it is not one.

    >>> decode_chunk(b'{"partition": 1}')
    Traceback (most recent call last):
    ...
    ValueError: not a swarm-stage record: Object missing required field `next_offset`
    """
    try:
        return _decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise ValueError(f"not a swarm-stage record: {err}") from None


@dataclass(slots=True, eq=False)
class _Forwarded(Generic[R]):
    record: R
    remaining: int


#: A released like (as forwarded: the stage's child makes the event of it) and the
#: forwarded record it came in.
Released = tuple[_Forwarded[R], ForwardedLike]


class SwarmFeed(Generic[R]):
    """Forwarded records in, likes in ``(ts, partition, offset)`` order out; tells which
    records are done (every like of theirs through the stage), so they can be acked.

    Parameters
    ----------
    merge
        The event-time merge over source partitions (its settings are the worker's).
    partitions
        The source topic's partition count: partitions ``0 .. partitions - 1`` are expected
        from the start, so one whose first record comes late still holds the others back
        (up to the merge's idle time).
    batch_size
        At most this many likes per release.
    clock
        Seconds, any monotonic origin. The feed's :attr:`now` (a
        :class:`~stream.merge.WaitingClock` over it) stands still while the caller runs the
        stage (``with feed.now.paused()``): that is not silence of partitions.
    wall_clock
        Unix seconds, to tell how old a record's high watermark is (its ``sent_at``).

    Examples
    --------
    >>> feed = SwarmFeed[str](EventTimeMerge(idle_seconds=9.0, max_held=100), 2, 10,
    ...                       clock=lambda: 0.0)
    >>> def chunk(p, likes, hw):
    ...     rows = [(o, LikeEvent(f"e{p}{o}", "like", "u", "x", "a", ts), None) for o, ts in likes]
    ...     return decode_chunk(encode_chunk(p, likes[-1][0] + 1, likes[-1][1], hw,
    ...                                      encode_likes(rows)))
    >>> feed.add("r0", chunk(0, [(0, 1.0), (1, 3.0)], hw=5))
    []
    >>> [like.event_id for _, like in feed.release()]  # partition 1 has said nothing yet
    []
    >>> feed.add("r1", chunk(1, [(0, 2.0)], hw=1))  # caught up: holds nothing back
    []
    >>> released = feed.release()
    >>> [like.event_id for _, like in released], feed.done(released)
    (['e00', 'e10', 'e01'], ['r0', 'r1'])
    """

    def __init__(
        self,
        merge: EventTimeMerge[Released[R]],
        partitions: int,
        batch_size: int,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.merge = merge
        self._wall_clock = wall_clock
        self.partitions = partitions
        self.batch_size = batch_size
        self.now = WaitingClock(clock)
        self._unacked: deque[_Forwarded[R]] = deque()
        self.merge.assign(range(partitions), self.now())

    def reset(self) -> None:
        """Forget everything held (the stage's partition was revoked: it is redelivered)."""
        self.merge.revoke(self.merge.partitions)
        self.merge.assign(range(self.partitions), self.now())
        self._unacked.clear()

    def add(self, record: R, chunk: Chunk) -> list[R]:
        """Hold the likes of ``record``; returns the records that may be acked now (this one,
        if it holds no likes and every record before it is done)."""
        now = self.now()
        forwarded = _Forwarded(record, len(chunk.likes))
        self._unacked.append(forwarded)
        for like in chunk.likes:
            self.merge.add(chunk.partition, like.offset, like.ts, (forwarded, like), now)
        self.merge.advance(chunk.partition, chunk.next_offset, chunk.newest, now)
        # A record read back after a rebalance, or one that waited in the topic, tells where
        # the partition stood when it was sent, not now.
        as_of = self._as_of(chunk.sent_at, now)
        self.merge.observe_highwater(chunk.partition, chunk.highwater, now, as_of=as_of)
        return self._ackable()

    def observe_source(self, highwaters: Mapping[int, int], asked_at: float) -> None:
        """The source partitions' high watermarks as the broker gave them when asked at
        ``asked_at`` (unix seconds). Fresher than any worker's report: a partition whose
        worker died says nothing more, but new records on it show here, so it holds the
        others back instead of passing as caught up on its last report."""
        now = self.now()
        as_of = self._as_of(asked_at, now)
        for partition, highwater in highwaters.items():
            self.merge.observe_highwater(partition, highwater, now, as_of=as_of)

    def _as_of(self, wall_time: float, now: float) -> float:
        # Unix seconds to the feed's clock: ``now`` less how long ago that was.
        return now - max(0.0, self._wall_clock() - wall_time)

    def release(self) -> list[Released[R]]:
        """The likes that may go now, oldest first (at most ``batch_size``)."""
        return self.merge.release(self.now(), limit=self.batch_size)

    def done(self, released: Sequence[Released[R]]) -> list[R]:
        """``released`` went through the stage: the records that may be acked now, in the
        order they were added."""
        for forwarded, _ in released:
            forwarded.remaining -= 1
        return self._ackable()

    def _ackable(self) -> list[R]:
        # Acks go strictly in offset order: the group commits past an acked record whatever
        # it was not told (Faust 0.11's consumer commits the first run of acked offsets, gap
        # before it or not, when nothing was committed yet), and a held record committed
        # past is never delivered again after a rebalance.
        out: list[R] = []
        while self._unacked and self._unacked[0].remaining <= 0:
            out.append(self._unacked.popleft().record)
        return out
