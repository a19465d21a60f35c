"""The one entry point every driver calls: a batch of events in, alerts out.

The Faust worker, ``likeguard replay`` and the tests all feed :meth:`Pipeline.process`; none of
them knows how windows, models or cool-downs work.

Per batch, the work is: store snapshots (newest wins) and count like/unlike events into every
window family (one Lua call each), let each detector judge the batch, pass the findings through
the alert gate (one more Lua call), and checkpoint models now and then.

The detectors judge a batch at the same time, one thread each: they read what the windows,
the snapshots and every detector's ``prepare`` wrote, and write only keys of their own, so the
order in which Redis runs their scripts changes nothing, and one detector's Python runs while
Redis works on another's script (a batch costs about the larger of the two, not their sum).
Findings are gathered in the detectors' order, as if they had run one after the other.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from detectors.alerts import AlertGate
from detectors.base import ACTOR_LIKES, ACTOR_UNLIKES, Batch, Detector, Finding
from detectors.burst import BurstDetector
from detectors.churn import ChurnDetector
from detectors.config import Config
from detectors.imbalance import FanImbalanceDetector
from detectors.models import ModelCheckpoints
from detectors.new_accounts import NewAccountSpikeDetector
from detectors.state import RedisState, script_json
from detectors.swarm import SwarmDetector
from detectors.windows import ADDED, DUPLICATE, WindowCounts, WindowSpec, WindowStore
from schemas.records import AccountSnapshot, Alert, Event, LikeEvent, PostSnapshot

log = logging.getLogger(__name__)

_OUTCOME = {ADDED: "accepted", DUPLICATE: "duplicate"}


@dataclass(slots=True)
class BatchResult:
    """What one batch produced: alerts, and event counts by (type, outcome)."""

    alerts: list[Alert] = field(default_factory=list)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    newest_event_time: float | None = None
    #: The ``actor_likes`` counts of the batch's like and unlike events, in their order
    #: (``None`` for unlikes): what a stage needs to run the cross-account detectors on the
    #: likes later (:meth:`Pipeline.judge_counted`).
    like_windows: list[WindowCounts | None] = field(default_factory=list)


def default_detectors(config: Config) -> list[Detector]:
    """Every detector enabled in ``config``."""
    detectors: list[Detector] = []
    if config.burst.enabled:
        detectors.append(BurstDetector(config.burst, config.windows.lengths_seconds))
    if config.new_account_spike.enabled:
        detectors.append(NewAccountSpikeDetector(config.new_account_spike, config.windows))
    if config.fan_imbalance.enabled:
        detectors.append(FanImbalanceDetector(config.fan_imbalance, config.windows))
    if config.swarm.enabled:
        detectors.append(SwarmDetector(config.swarm))
    if config.churn.enabled:
        detectors.append(ChurnDetector(config.churn, config.windows.lengths_seconds))
    return detectors


def _statuses(
    likes: Sequence[LikeEvent], windows: Mapping[str, Sequence[WindowCounts | None]]
) -> list[int]:
    """Each like's or unlike's status in its core window (``ADDED`` where none was given)."""
    out: list[int] = []
    for index, event in enumerate(likes):
        counts = windows[ACTOR_LIKES if event.type == "like" else ACTOR_UNLIKES][index]
        out.append(counts.status if counts is not None else ADDED)
    return out


def _actor_if(kind: str) -> object:
    def key_of(event: LikeEvent) -> str | None:
        return event.actor_id if event.type == kind else None

    return key_of


class Pipeline:
    """Detection over batches of events, with all state in Redis under one namespace.

    Parameters
    ----------
    state
        Redis handle (namespace included).
    config
        Detection settings.
    detectors
        The detectors to run; every enabled one by default.
    """

    def __init__(
        self, state: RedisState, config: Config, detectors: Sequence[Detector] | None = None
    ) -> None:
        self.state = state
        self.config = config
        self.detectors = list(default_detectors(config) if detectors is None else detectors)
        lengths = config.windows.lengths_seconds
        core = [
            # Keyed by the actor, the partition key: one worker writes each, so it counts them.
            WindowSpec(ACTOR_LIKES, _actor_if("like"), lengths, mirrored=True),  # type: ignore[arg-type]
            WindowSpec(ACTOR_UNLIKES, _actor_if("unlike"), lengths, mirrored=True),  # type: ignore[arg-type]
        ]
        specs = core + [s for d in self.detectors for s in d.window_specs()]
        self.windows = WindowStore(state, config.windows, specs)
        self.gate = AlertGate(state, config.alerts)
        self.checkpoints = ModelCheckpoints(state)
        #: Events between model checkpoints (0: only when :meth:`checkpoint` is called).
        self.checkpoint_every = config.models.checkpoint_every_events
        self._since_checkpoint = 0
        # One thread per detector but the first, which runs in the caller's thread.
        self._threads = (
            ThreadPoolExecutor(len(self.detectors) - 1, thread_name_prefix="likeguard-detector")
            if len(self.detectors) > 1
            else None
        )
        self._restore_models()

    def process(self, events: Sequence[Event]) -> BatchResult:
        """Run one batch (in the given order) through windows, detectors and the alert gate."""
        result = BatchResult()
        likes: list[LikeEvent] = []
        snapshots: list[AccountSnapshot | PostSnapshot] = []
        for event in events:
            if isinstance(event, LikeEvent):
                likes.append(event)
            else:
                snapshots.append(event)
            if result.newest_event_time is None or event.ts > result.newest_event_time:
                result.newest_event_time = event.ts
        if snapshots:
            self._store_snapshots(snapshots, result)
        if likes:
            self._detect(likes, result)
        self._count_towards_checkpoint(len(events))
        return result

    def judge_counted(
        self,
        likes: Sequence[LikeEvent],
        counts: Sequence[WindowCounts | None],
        again: bool = False,
    ) -> BatchResult:
        """Run likes that another pipeline has already counted through this one's detectors
        and the alert gate; windows and snapshots are not touched.

        ``counts`` are the likes' ``actor_likes`` counts as that pipeline gave them
        (:attr:`BatchResult.like_windows`); a like it counted as a redelivery re-sends the
        alerts it triggered. This is how one stage runs the cross-account detectors on every
        worker's likes (:class:`~detectors.swarm_stage.SwarmStage`). ``again``: these likes
        were judged before (a stage taking over reads them again): they re-send the alerts
        they triggered, and the models do not learn them twice.
        """
        if len(counts) != len(likes):
            raise ValueError(f"{len(likes)} likes but {len(counts)} counts")
        result = BatchResult()
        if likes:
            result.newest_event_time = max(like.ts for like in likes)
            unlikes: list[WindowCounts | None] = [None] * len(likes)
            windows = {ACTOR_LIKES: counts, ACTOR_UNLIKES: unlikes}
            statuses = [DUPLICATE] * len(likes) if again else _statuses(likes, windows)
            self._judge_and_admit(likes, windows, statuses, result, learn=not again)
        self._count_towards_checkpoint(len(likes))
        return result

    def _count_towards_checkpoint(self, events: int) -> None:
        self._since_checkpoint += events
        if self.checkpoint_every and self._since_checkpoint >= self.checkpoint_every:
            self.checkpoint()

    def _detect(self, likes: list[LikeEvent], result: BatchResult) -> None:
        windows = self.windows.update(likes)
        statuses = _statuses(likes, windows)
        for event, status in zip(likes, statuses, strict=True):
            result.outcomes[(event.type, _OUTCOME.get(status, "late"))] += 1
        result.like_windows = windows[ACTOR_LIKES]
        self._judge_and_admit(likes, windows, statuses, result)

    def _judge_and_admit(
        self,
        likes: Sequence[LikeEvent],
        windows: Mapping[str, Sequence[WindowCounts | None]],
        statuses: Sequence[int],
        result: BatchResult,
        learn: bool = True,
    ) -> None:
        # A redelivered event re-sends the alerts it triggered (see below).
        redelivered = [e.event_id for e, s in zip(likes, statuses, strict=True) if s == DUPLICATE]
        batch = Batch(events=likes, windows=windows, state=self.state, learn=learn)
        findings = [f for found in self._judge(batch) for f in found]
        findings.sort(key=lambda f: f.event_time)
        admitted = self.gate.admit(findings)
        if redelivered:
            # Alerts these events triggered before (maybe never published: crash before ack).
            # Only this pipeline's detectors' (a live stage's likes also triggered the workers').
            seen = {a.alert_id for a in admitted}
            mine = {d.name for d in self.detectors}
            admitted += [
                a
                for a in self.gate.redelivered(redelivered)
                if a.alert_id not in seen and a.detector in mine
            ]
            admitted.sort(key=lambda a: (a.event_time, a.alert_id))
        result.alerts.extend(admitted)

    def _judge(self, batch: Batch) -> list[list[Finding]]:
        """Every detector's findings, in the detectors' order (see the module docstring)."""
        for detector in self.detectors:
            detector.prepare(batch)
        if self._threads is None:
            return [detector.detect(batch) for detector in self.detectors]
        first, *others = self.detectors
        pending = [self._threads.submit(detector.detect, batch) for detector in others]
        try:
            found = [first.detect(batch)]
        finally:
            # None is left running when this returns or raises (the first error, in order).
            errors = [future.exception() for future in pending]
        for error in errors:
            if error is not None:
                raise error
        return found + [future.result() for future in pending]

    def _store_snapshots(
        self, snapshots: list[AccountSnapshot | PostSnapshot], result: BatchResult
    ) -> None:
        rows: list[tuple[str, str, str, list[str]]] = []
        for snap in snapshots:
            if isinstance(snap, AccountSnapshot):
                kind, subject = "acct", snap.account_id
                values: tuple[tuple[str, str | float | int | None], ...] = (
                    ("created_at", snap.created_at),
                    ("followers", snap.followers),
                    ("following", snap.following),
                    ("posts", snap.posts),
                )
            else:
                kind, subject = "post", snap.post_id
                values = (
                    ("author_id", snap.author_id),
                    ("created_at", snap.created_at),
                    ("views", snap.views),
                    ("completions", snap.completions),
                )
            fields: list[str] = []
            for name, value in values:
                if value is not None:
                    fields += (name, repr(value) if isinstance(value, float) else str(value))
            rows.append((kind, subject, repr(snap.ts), fields))
        args = [self.state.namespace, self.config.snapshots.key_ttl_seconds, script_json(rows)]
        stored = bytes(self.state.run_script("snapshots", args)).split(b",")
        for snap, ok in zip(snapshots, stored, strict=True):
            result.outcomes[(snap.type, "accepted" if ok == b"1" else "duplicate")] += 1

    def checkpoint(self, extra: Mapping[str, Any] | None = None) -> None:
        """Save every detector's model state to Redis now, with ``extra`` entries (saved in
        the same write)."""
        models = {d.name: d.model_state() for d in self.detectors}
        self.checkpoints.save(models | dict(extra or {}))
        self._since_checkpoint = 0

    def _restore_models(self) -> None:
        saved = self.checkpoints.load()
        for detector in self.detectors:
            if detector.name in saved:
                detector.load_model_state(saved[detector.name])
                log.info("restored %s model from checkpoint", detector.name)

    def close(self) -> None:
        """Checkpoint models; call on shutdown."""
        self.checkpoint()
        if self._threads is not None:
            self._threads.shutdown(wait=True)
