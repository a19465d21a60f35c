"""The worker's detection (and its swarm stage), in child processes: Faust and the pipeline
stop sharing one GIL.

In one process, Faust's event loop (about 150 µs of Python per record) and the pipeline
thread take turns on the interpreter lock, and every Redis reply waits for it (up to the
5 ms switch interval): the worker ran at two thirds of a bare Faust agent while both of the
machine's cores had room. Here the parent only moves records; a child process decodes and
validates each batch's raw values, runs the :class:`~detectors.pipeline.Pipeline` (the
per-account detectors; the swarm stage runs those with a cross-account view), and returns
the result, the likes to forward to that stage with their window counts, the rejects (the
parent turns them into dead letters, it has the record metadata) and its Redis call timings
(the parent owns the Prometheus registry).

The worker that holds the swarm stage runs it in a second child of the same kind
(:func:`run_stage`). The stage is mostly Redis's work (33 of its 36 µs per like wait for
``swarm.lua``), but in a thread of the worker it still cost the event loop: in alternated live
runs the worker moved 5,928 and 6,388 events/s with the thread, 6,240 and 7,100 with the child.

The functions below run in a child; :class:`DetectionProcess` is the parent's handle. One
batch at a time per child: the callers (``stream.app.Detection``, ``stream.app.SwarmRunner``)
serialise.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from detectors.config import load_config
from detectors.pipeline import BatchResult, Pipeline
from detectors.state import RedisState, StateError
from detectors.swarm_stage import SwarmStage, worker_detectors
from detectors.windows import WindowCounts
from schemas.records import Alert, Event, LikeEvent
from schemas.validate import InvalidEvent, parse_event
from stream.config import Settings
from stream.swarm_stage import ForwardedLike, encode_likes

#: (operation, seconds, failed): one per Redis call, as :data:`detectors.state.RedisObserver`.
Timing = tuple[str, float, bool]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record of the batch that failed validation (``index`` into the values sent)."""

    index: int
    reason: str
    message: str
    field: str | None

    def error(self) -> InvalidEvent:
        return InvalidEvent(self.reason, self.message, self.field)


@dataclass(slots=True)
class ChildResult:
    """What the child sends back for one batch."""

    result: BatchResult = field(default_factory=BatchResult)
    rejected: list[Rejected] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    #: Set when Redis failed: the batch was not processed and must be retried.
    state_error: str | None = None
    #: For the swarm stage, per source partition of the batch: the newest event time of its
    #: records and its valid likes (:func:`stream.swarm_stage.encode_likes`). Empty unless
    #: the batch came with its places and the swarm detector is on.
    forward: dict[int, tuple[float | None, bytes]] = field(default_factory=dict)


@dataclass(slots=True)
class StageResult:
    """What the swarm stage's child sends back for one released batch of likes."""

    alerts: list[Alert] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    #: Set when Redis failed: the likes were not processed and must be retried.
    state_error: str | None = None


# ------------------------------------------------------------------------------ the child

_settings: Settings | None = None
_pipeline: Pipeline | None = None
_forwards = False  # whether _pipeline's likes go on to the stage (decided once, in _open)
_stage: SwarmStage | None = None
_timings: list[Timing] = []


def _initialize(settings: Settings) -> None:
    global _settings
    _settings = settings
    # The parent decides when the child stops (after the shutdown checkpoint): a Ctrl-C or a
    # SIGTERM sent to the whole process group must not kill it mid-batch. SIGKILL still does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    # A parent killed alone (SIGKILL, the OOM killer) cannot stop its child; an orphan would
    # hold Redis connections and memory forever. Its batch was never acked: nothing is lost.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _record(operation: str, seconds: float, failed: bool) -> None:
    _timings.append((operation, seconds, failed))


def _open() -> Pipeline:
    global _pipeline, _forwards
    if _pipeline is None:
        assert _settings is not None, "child not initialised"
        state = RedisState.from_url(_settings.redis_url, _settings.namespace, _record)
        config = load_config(_settings.config or None)
        # The worker's swarm stage (stream/swarm_stage.py) runs the cross-account detectors,
        # on the likes of every worker in event-time order; this pipeline forwards them to it.
        _pipeline = Pipeline(state, config, worker_detectors(config))
        _forwards = SwarmStage.enabled(config)
    return _pipeline


def decode(values: Sequence[bytes]) -> tuple[list[Event], list[Rejected]]:
    """Valid events in order, and the rejects with their position (pure: no Redis).

    >>> events, rejected = decode([b'{"type": "share"}', b'{"event_id": "e", "type": "like",'
    ...     b' "actor_id": "a", "post_id": "p", "author_id": "u", "ts": 1793491200}'])
    >>> [e.event_id for e in events], [(r.index, r.reason) for r in rejected]
    (['e'], [(0, 'unknown_type')])
    """
    events: list[Event] = []
    rejected: list[Rejected] = []
    for index, value in enumerate(values):
        try:
            events.append(parse_event(value))
        except InvalidEvent as err:
            rejected.append(Rejected(index, err.reason, str(err.args[0]), err.field))
    return events, rejected


def run_batch(values: Sequence[bytes], places: Sequence[tuple[int, int]] | None) -> ChildResult:
    """Decode, validate and run one batch (in the child); with ``places`` (partition and
    offset of each value), also the likes to forward to the swarm stage."""
    _timings.clear()
    events, rejected = decode(values)
    out = ChildResult(rejected=rejected)
    if events:
        try:
            pipeline = _open()
            out.result = pipeline.process(events)
        except StateError as err:
            out.state_error = str(err)
            out.timings = list(_timings)
            return out
        if places is not None and _forwards:
            out.forward = forwarded(events, rejected, places, out.result.like_windows)
    out.timings = list(_timings)
    return out


def run_stage(likes: Sequence[ForwardedLike]) -> StageResult:
    """The cross-account detectors and the alert gate for likes the swarm stage released (in
    its child)."""
    global _stage
    _timings.clear()
    out = StageResult()
    try:
        if _stage is None:
            assert _settings is not None, "child not initialised"
            state = RedisState.from_url(_settings.redis_url, _settings.namespace, _record)
            _stage = SwarmStage(state, load_config(_settings.config or None))
        events = [like.event() for like in likes]
        out.alerts = _stage.process(events, [like.window() for like in likes])
    except StateError as err:
        out.state_error = str(err)
    out.timings = list(_timings)
    return out


def forwarded(
    events: Sequence[Event],
    rejected: Sequence[Rejected],
    places: Sequence[tuple[int, int]],
    like_windows: Sequence[WindowCounts | None],
) -> dict[int, tuple[float | None, bytes]]:
    """Per source partition: newest event time and the likes with their ``actor_likes``
    counts (``like_windows``: one per like or unlike event, in order), for the swarm stage
    (pure).

    >>> like = LikeEvent("e1", "like", "u1", "p1", "a1", 10.0)
    >>> unlike = LikeEvent("e2", "unlike", "u1", "p1", "a1", 12.0)
    >>> forwarded([like, unlike], [Rejected(1, "bad_json", "x", None)], [(0, 5), (3, 1), (0, 6)],
    ...           [WindowCounts(1, (1, 1)), None])
    {0: (12.0, b'[[5,10.0,"e1","u1","p1","a1",null,null,1,[1,1]]]'), 3: (None, b'[]')}
    """
    bad = {r.index for r in rejected}
    valid = [place for index, place in enumerate(places) if index not in bad]
    newest: dict[int, float | None] = {partition: None for partition, _ in places}
    likes: dict[int, list[tuple[int, LikeEvent, WindowCounts | None]]] = {
        partition: [] for partition in newest
    }
    windows = iter(like_windows)
    for event, (partition, offset) in zip(events, valid, strict=True):
        top = newest[partition]
        if top is None or event.ts > top:
            newest[partition] = event.ts
        if isinstance(event, LikeEvent):
            window = next(windows)
            if event.type == "like":
                likes[partition].append((offset, event, window))
    return {p: (newest[p], encode_likes(likes[p])) for p in newest}


def close_pipeline() -> str | None:
    """Checkpoint the models (on shutdown); the error text if Redis failed."""
    try:
        if _pipeline is not None:
            _pipeline.close()
        if _stage is not None:
            _stage.close()
    except StateError as err:
        return str(err)
    return None


# ----------------------------------------------------------------------------- the parent


class DetectionProcess:
    """The parent's handle on a child: one process, started on first use (the worker has
    one for detection and, while it holds the swarm stage, one for the stage).

    ``spawn``, not ``fork``: the parent runs an event loop and aiokafka's threads, which a
    forked child must not inherit. A worker killed with its process group takes the child
    with it; a child that dies makes the next call fail (``BrokenProcessPool``), so the batch
    stays unacked.
    """

    def __init__(self, settings: Settings) -> None:
        self._executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_initialize,
            initargs=(settings,),
        )

    async def run(
        self, values: Sequence[bytes], places: Sequence[tuple[int, int]] | None = None
    ) -> ChildResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, run_batch, list(values), places)

    async def run_stage(self, likes: Sequence[ForwardedLike]) -> StageResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, run_stage, list(likes))

    async def close(self) -> str | None:
        """Checkpoint in the child, then stop it."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, close_pipeline)
        finally:
            self._executor.shutdown(wait=True)
