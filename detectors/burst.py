"""Burst liking: one account liking far more than its peers, at any resolution.

The decision at each resolution compares the account's like count in the window ending at the
event with ``max(min_likes, quantile_factor × population quantile)``, where the population
quantile is learned online (River P² quantile) from every account's counts. The score is the
largest ratio over resolutions, so 1.0 is the threshold.
"""

from __future__ import annotations

from typing import Any, ClassVar

from detectors.base import ACTOR_LIKES, Batch, Detector, Finding, sampled
from detectors.config import BurstConfig
from detectors.models import PopulationQuantiles
from detectors.windows import LATE


class BurstDetector(Detector):
    """Flags accounts whose like rate in some window is far above the population's."""

    name: ClassVar[str] = "burst"

    def __init__(self, config: BurstConfig, lengths: tuple[int, ...]) -> None:
        self.config = config
        self.lengths = lengths
        self.model = PopulationQuantiles(len(lengths), config.quantile)

    def detect(self, batch: Batch) -> list[Finding]:
        findings: list[Finding] = []
        windows = batch.windows[ACTOR_LIKES]
        floors = self.config.min_likes
        factor = self.config.quantile_factor
        thresholds = [
            max(float(floor), factor * q)
            for floor, q in zip(floors, self.model.quantiles(), strict=True)
        ]
        for index, event in enumerate(batch.events):
            window = windows[index]
            if window is None or window.status == LATE:
                continue
            counts = window.counts
            best = 0
            best_ratio = 0.0
            for r, count in enumerate(counts):
                ratio = count / thresholds[r]
                if ratio > best_ratio:
                    best, best_ratio = r, ratio
            if best_ratio >= 1.0:
                length = self.lengths[best]
                findings.append(
                    Finding(
                        detector=self.name,
                        subject_kind="account",
                        subject_id=event.actor_id,
                        accounts=(event.actor_id,),
                        score=best_ratio,
                        event_time=event.ts,
                        window_start=event.ts - length,
                        window_end=event.ts,
                        trigger_event_id=event.event_id,
                        evidence={
                            "window_seconds": length,
                            "likes_in_window": counts[best],
                            "threshold": round(thresholds[best], 3),
                            "population_quantile": round(
                                self.model.quantiles()[best], 3
                            ),
                            "quantile": self.config.quantile,
                            "likes_by_window": {
                                str(n): c for n, c in zip(self.lengths, counts, strict=True)
                            },
                        },
                    )
                )
            if batch.is_fresh(index) and sampled(event.event_id, self.config.learn_fraction):
                self.model.learn_one(counts)
        return findings

    def model_state(self) -> Any:
        return self.model

    def load_model_state(self, state: Any) -> None:
        if isinstance(state, PopulationQuantiles) and len(state.quantiles()) == len(self.lengths):
            self.model = state
