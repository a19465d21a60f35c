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
counts the core per-actor like windows strictly before the like; see ``swarm.lua``) or what
only the stage writes (the per-post liker sets, suspects, groups), so it does not matter how
far detection has run ahead of the stage.

Examples
--------
>>> from detectors.config import load_config
>>> SwarmStage.enabled(load_config()), [d.name for d in stage_detectors(load_config())]
(True, ['new_account_spike', 'fan_imbalance', 'swarm'])
"""

from __future__ import annotations

from collections.abc import Sequence

from detectors.base import Detector
from detectors.config import Config
from detectors.pipeline import Pipeline, default_detectors
from detectors.state import RedisState
from detectors.windows import WindowCounts
from schemas.records import Alert, LikeEvent


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
        they triggered, with the same alert ids."""
        return self.pipeline.judge_counted(likes, counts).alerts

    def close(self) -> None:
        """Checkpoint the detectors' models; call on shutdown."""
        self.pipeline.close()
