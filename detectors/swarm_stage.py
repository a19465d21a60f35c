"""Swarm detection on its own, for likes that the rest of the pipeline has already counted.

In ``likeguard replay`` the swarm detector runs inside :class:`~detectors.pipeline.Pipeline`,
on the capture in event-time order. Its state (a post's recent likers, pair evidence, groups)
spans accounts that a scaled-out deployment hands to different workers, and its findings
depend on the order of the likes. A live worker therefore runs the pipeline without it and
forwards the batch's likes to one *swarm stage*, which sees every worker's likes and takes
them in the same ``(ts, partition, offset)`` order as replay (``stream/swarm_stage.py`` does
the Kafka side). This class is what that stage runs per released batch: the swarm detector,
then the alert gate.

The detector reads only what detection wrote before the like's time (the core per-actor like
windows, counted strictly before the like; see ``swarm.lua``), so it does not matter how far
detection has run ahead of the stage.

Examples
--------
>>> from detectors.config import load_config
>>> SwarmStage.enabled(load_config())
True
"""

from __future__ import annotations

from collections.abc import Sequence

from detectors.alerts import AlertGate
from detectors.config import Config
from detectors.state import RedisState
from detectors.swarm import SwarmDetector
from schemas.records import Alert, LikeEvent


class SwarmStage:
    """The swarm detector and the alert gate, over likes given in event-time order.

    Parameters
    ----------
    state
        Redis handle (the pipeline's namespace).
    config
        Detection settings (``[swarm]`` and ``[alerts]`` are used).
    """

    def __init__(self, state: RedisState, config: Config) -> None:
        self.state = state
        self.detector = SwarmDetector(config.swarm)
        self.gate = AlertGate(state, config.alerts)

    @staticmethod
    def enabled(config: Config) -> bool:
        """Whether ``config`` runs the swarm detector at all."""
        return config.swarm.enabled

    def process(self, likes: Sequence[LikeEvent]) -> list[Alert]:
        """Alerts of ``likes`` (taken in the given order; redelivered likes re-report the
        groups they triggered, with the same alert ids), in event-time order."""
        findings = self.detector.judge(likes, self.state)
        findings.sort(key=lambda f: f.event_time)
        return self.gate.admit(findings)
