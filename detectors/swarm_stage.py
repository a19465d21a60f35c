"""The cross-account detectors on their own, for likes that a worker's pipeline has counted.

In ``likeguard replay`` every detector runs inside :class:`~detectors.pipeline.Pipeline`, on
the capture in event-time order. Some detectors judge state that spans accounts
(:attr:`~detectors.base.Detector.cross_account`: swarm's post likers, pairs and groups,
new_account_spike's and fan_imbalance's per-post likers and authors, and the population
models all three learn from every account), and a scaled-out deployment hands those accounts
to different workers; their findings also depend on the order of the likes. A live worker
therefore runs the pipeline with the per-account detectors only and forwards its batches'
likes, with the ``actor_likes`` window counts it computed for them, to one *stage* (named
the swarm stage after its first detector), which sees every worker's likes and takes them in
the same ``(ts, partition, offset)`` order as replay (``stream/swarm_stage.py`` does the
Kafka side). This class is what that stage runs per released batch: the cross-account
detectors on the forwarded counts, then the alert gate.

The detectors read only what detection wrote before the like's time where it matters (swarm
counts the core per-actor like windows strictly before the like; see ``swarm.lua``; snapshots
are read as of the like) or what only the stage writes (the per-post liker sets, suspects,
groups), so it does not matter how far detection has run ahead of the stage.

The stage checkpoints its models after every batch, with the newest like they learned (a
:class:`LearnedUpTo`), in one write. A stage that takes over after a crash reads again what
its predecessor had not acked: those likes are judged again (their alerts come again under
the same ids) but not learned again, so the models are the ones replay would have.

Examples
--------
>>> from detectors.config import load_config
>>> SwarmStage.enabled(load_config()), [d.name for d in stage_detectors(load_config())]
(True, ['new_account_spike', 'fan_imbalance', 'swarm'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from detectors.base import Detector
from detectors.config import Config
from detectors.pipeline import Pipeline, default_detectors
from detectors.state import RedisState
from detectors.windows import ADDED, DUPLICATE, WindowCounts
from schemas.records import Alert, LikeEvent

#: Checkpoint entry (beside the detectors' models) of the stage's :class:`LearnedUpTo`.
LEARNED = "swarm_stage:learned"


@dataclass(slots=True)
class LearnedUpTo:
    """The newest likes the stage's models have learned: their time, and the ids of those at
    that very time (the stage takes likes in event-time order, so every like before ``ts``
    was learned, and of those at ``ts`` the ones in ``ids``).

    >>> learned = LearnedUpTo()
    >>> learned.add("e1", 10.0); learned.add("e2", 12.0); learned.add("e3", 12.0)
    >>> [learned.has(i, t) for i, t in (("e1", 10.0), ("e3", 12.0), ("e4", 12.0), ("e5", 13.0))]
    [True, True, False, False]
    """

    ts: float = float("-inf")
    ids: set[str] = field(default_factory=set)

    def has(self, event_id: str, ts: float) -> bool:
        return ts < self.ts or (ts == self.ts and event_id in self.ids)

    def add(self, event_id: str, ts: float) -> None:
        if ts > self.ts:
            self.ts, self.ids = ts, {event_id}
        elif ts == self.ts:
            self.ids.add(event_id)


def _first_seen(window: WindowCounts | None) -> WindowCounts | None:
    """A like new to the stage counts as added even if its worker counted it twice: that
    worker's predecessor counted it and died before forwarding it, so the stage's models have
    not learned it (a like the stage has seen before is :meth:`LearnedUpTo.has`)."""
    if window is not None and window.status == DUPLICATE:
        return WindowCounts(ADDED, window.counts)
    return window


def stage_detectors(config: Config) -> list[Detector]:
    """The enabled detectors with a cross-account view, in the pipeline's order."""
    return [d for d in default_detectors(config) if d.cross_account]


def worker_detectors(config: Config) -> list[Detector]:
    """The enabled detectors a live worker runs itself: those that judge one account."""
    return [d for d in default_detectors(config) if not d.cross_account]


class SwarmStage:
    """The cross-account detectors and the alert gate, over likes given in event-time order.

    Parameters
    ----------
    state
        Redis handle (the pipeline's namespace).
    config
        Detection settings.
    """

    def __init__(self, state: RedisState, config: Config) -> None:
        detectors = stage_detectors(config)
        for detector in detectors:
            if detector.window_specs():
                # The stage gets the core counts only (forwarded); nothing counts the rest.
                raise ValueError(f"{detector.name} declares window families: not for the stage")
        self.pipeline = Pipeline(state, config, detectors)
        self.pipeline.checkpoint_every = 0  # after every batch instead, with `learned`
        saved = self.pipeline.checkpoints.load().get(LEARNED)
        self.learned = saved if isinstance(saved, LearnedUpTo) else LearnedUpTo()

    @staticmethod
    def enabled(config: Config) -> bool:
        """Whether ``config`` runs any detector with a cross-account view (this builds the
        detectors: decide it once, not per batch)."""
        return bool(stage_detectors(config))

    def process(
        self, likes: Sequence[LikeEvent], counts: Sequence[WindowCounts | None]
    ) -> list[Alert]:
        """Alerts of ``likes`` (taken in the given order, with the ``actor_likes`` counts a
        worker computed for each), in event-time order. Likes seen before re-report what
        they triggered, with the same alert ids, and teach the models nothing new."""
        learned = self.learned
        seen = [learned.has(like.event_id, like.ts) for like in likes]
        alerts: list[Alert] = []
        if any(seen):
            again = [k for k, s in enumerate(seen) if s]
            alerts += self.pipeline.judge_counted(
                [likes[k] for k in again], [counts[k] for k in again], again=True
            ).alerts
        fresh = [k for k, s in enumerate(seen) if not s]
        if fresh:
            alerts += self.pipeline.judge_counted(
                [likes[k] for k in fresh], [_first_seen(counts[k]) for k in fresh]
            ).alerts
            for k in fresh:
                learned.add(likes[k].event_id, likes[k].ts)
            self.pipeline.checkpoint({LEARNED: learned})
        if len(alerts) > 1 and any(seen):  # two runs' alerts, each in event-time order
            alerts.sort(key=lambda a: (a.event_time, a.alert_id))
        return alerts

    def close(self) -> None:
        """Checkpoint the detectors' models; call on shutdown."""
        self.pipeline.checkpoint({LEARNED: self.learned})
        self.pipeline.close()
