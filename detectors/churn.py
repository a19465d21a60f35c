"""Like/unlike churn: systematic cycling at volume, not ordinary second thoughts.

Liking then unliking is ordinary (mis-taps, second thoughts, later regrets), so a single
unlike, or a heavy liker who unlikes a few percent of the time, is never suspicious. A cycling
bot differs in three ways at once, and a finding needs all three, at some window resolution:

* **volume**: ``cycles = min(unlikes, likes)`` in the window, an upper bound on complete
  like→unlike cycles, reaches ``max(min_cycles, quantile_factor × population quantile)`` of
  per-account unlike counts (River P² quantile, learned about once per account per
  ``learn_window_seconds`` of unliking, so a bot's hundreds of unlikes weigh as one account);
* **ratio**: ``unlikes / likes ≥ min_ratio``: most of what it likes, it takes back (an
  account mass-deleting old likes has few likes in the window and so few cycles);
* **regularity**: many distinct posts cycled (``≥ min_distinct_posts``), or the same posts
  cycled again and again (``unlikes / distinct posts ≥ min_repeats``).

The score is ``cycles / threshold`` at the resolution where it is largest among those that pass
the ratio and regularity tests, so 1.0 is the threshold.

State and cost: the unlike counts come from the core ``actor_unlikes`` windows and the
distinct posts from this detector's ``churn_unliked_posts`` family (one sorted set per account,
member = post, unlike events only). Like counts at an unlike are read from the core
``actor_likes`` windows, only for unlikes whose unlike count already reaches the volume bar:
at most one pipelined round trip per batch, none in most batches. Per event, Python checks one
field for like events and does a few comparisons for unlike events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from detectors.base import (
    ACTOR_LIKES,
    ACTOR_UNLIKES,
    Batch,
    Detector,
    Finding,
    actor_finding,
    sampled,
)
from detectors.config import ChurnConfig
from detectors.models import PopulationQuantiles
from detectors.state import RedisState
from detectors.windows import ADDED, LATE, WindowSpec
from schemas.records import LikeEvent

#: Distinct posts each account unliked, per window (member = post id, at its latest unlike).
CHURN_UNLIKED_POSTS = "churn_unliked_posts"


def _unliker(event: LikeEvent) -> str | None:
    return event.actor_id if event.type == "unlike" else None


def _post(event: LikeEvent) -> str:
    return event.post_id


@dataclass(frozen=True, slots=True)
class CycleVerdict:
    """One window's judgement of an account's like/unlike cycling."""

    cycles: int
    ratio: float
    repeats: float
    volume: float
    regular: bool
    passed: bool


def judge_cycles(
    likes: int, unlikes: int, distinct_posts: int, threshold: float, config: ChurnConfig
) -> CycleVerdict:
    """Judge one window from its like, unlike and distinct-unliked-post counts.

    Parameters
    ----------
    likes, unlikes
        The account's likes and unlikes in the window.
    distinct_posts
        Distinct posts it unliked in the window.
    threshold
        The volume bar for this window.
    config
        ``[churn]`` settings (``min_ratio``, ``min_distinct_posts``, ``min_repeats``).

    Examples
    --------
    >>> cfg = ChurnConfig()
    >>> judge_cycles(likes=40, unlikes=40, distinct_posts=12, threshold=20, config=cfg).passed
    True
    >>> judge_cycles(300, 25, 25, 20, cfg).passed      # a heavy liker's ordinary unlikes
    False
    >>> judge_cycles(3, 60, 60, 20, cfg).passed        # mass-unliking old likes: few cycles
    False
    >>> judge_cycles(6, 6, 6, 20, cfg).passed          # a few second thoughts
    False
    """
    cycles = min(likes, unlikes)
    ratio = unlikes / max(1, likes)
    repeats = unlikes / max(1, distinct_posts)
    regular = distinct_posts >= config.min_distinct_posts or repeats >= config.min_repeats
    volume = cycles / threshold
    passed = volume >= 1.0 and ratio >= config.min_ratio and regular
    return CycleVerdict(cycles, ratio, repeats, volume, regular, passed)


class ChurnDetector(Detector):
    """Flags accounts that cycle like/unlike systematically and at volume.

    Parameters
    ----------
    config
        ``[churn]`` settings.
    lengths
        Window lengths (seconds) of the core like/unlike windows.

    Evidence of a finding: ``window_seconds``, ``likes``, ``unlikes``, ``cycles``, ``ratio``
    (unlikes / likes), ``distinct_posts`` and ``repeats`` (unlikes per distinct post),
    ``threshold`` (the volume bar), ``population_quantile``/``quantile``, and ``by_window``
    (likes, unlikes and distinct posts at every resolution).
    """

    name: ClassVar[str] = "churn"

    def __init__(self, config: ChurnConfig, lengths: tuple[int, ...]) -> None:
        self.config = config
        self.lengths = lengths
        self.model = PopulationQuantiles(len(lengths), config.quantile)
        if config.learn_window_seconds not in lengths:
            raise ValueError("churn.learn_window_seconds must be one of the window lengths")
        self._learn_index = lengths.index(config.learn_window_seconds)

    def window_specs(self) -> Sequence[WindowSpec]:
        return (
            WindowSpec(CHURN_UNLIKED_POSTS, _unliker, self.lengths, member_of=_post, latest=True),
        )

    def detect(self, batch: Batch) -> list[Finding]:
        unlike_windows = batch.windows[ACTOR_UNLIKES]
        factor = self.config.quantile_factor
        thresholds = [
            max(float(floor), factor * q)
            for floor, q in zip(self.config.min_cycles, self.model.quantiles(), strict=True)
        ]
        candidates: list[int] = []
        for index, window in enumerate(unlike_windows):
            if window is None or window.status == LATE:
                continue
            counts = window.counts
            # Cycles never exceed unlikes: below the bar everywhere, nothing to look up.
            if any(u >= t for u, t in zip(counts, thresholds, strict=True)):
                candidates.append(index)
            elif window.status == ADDED:
                share = self.config.learn_fraction / max(1, counts[self._learn_index])
                if sampled(batch.events[index].event_id, share):
                    self.model.learn_one(counts)
        if not candidates:
            return []
        likes = self._like_counts(batch.state, [batch.events[i] for i in candidates])
        findings: list[Finding] = []
        for index, like_counts in zip(candidates, likes, strict=True):
            finding = self._judge(batch, index, like_counts, thresholds)
            if finding is not None:
                findings.append(finding)
        return findings

    def _judge(
        self, batch: Batch, index: int, like_counts: list[int], thresholds: list[float]
    ) -> Finding | None:
        event = batch.events[index]
        unlike_window = batch.windows[ACTOR_UNLIKES][index]
        posts_window = batch.windows[CHURN_UNLIKED_POSTS][index]
        assert unlike_window is not None
        unlikes = unlike_window.counts
        # The posts family may call an unlike of an already-unliked post a duplicate (same
        # member): its counts are still right; only a late entry has none.
        if posts_window is None or posts_window.status == LATE:
            return None
        posts = posts_window.counts
        best: tuple[float, int, CycleVerdict] | None = None
        for r in range(len(self.lengths)):
            verdict = judge_cycles(like_counts[r], unlikes[r], posts[r], thresholds[r], self.config)
            if verdict.passed and (best is None or verdict.volume > best[0]):
                best = (verdict.volume, r, verdict)
        if best is None:
            return None
        score, r, verdict = best
        length = self.lengths[r]
        return actor_finding(
            self.name,
            event,
            score,
            length,
            {
                "window_seconds": length,
                "likes": like_counts[r],
                "unlikes": unlikes[r],
                "cycles": verdict.cycles,
                "ratio": round(verdict.ratio, 3),
                "distinct_posts": posts[r],
                "repeats": round(verdict.repeats, 3),
                "threshold": round(thresholds[r], 3),
                "population_quantile": round(self.model.quantiles()[r], 3),
                "quantile": self.config.quantile,
                "by_window": {
                    str(n): {"likes": lk, "unlikes": u, "distinct_posts": p}
                    for n, lk, u, p in zip(self.lengths, like_counts, unlikes, posts, strict=True)
                },
            },
        )

    def _like_counts(self, state: RedisState, events: list[LikeEvent]) -> list[list[int]]:
        """Each event's actor's likes over every window ending at the event: one round trip.

        Reads the core ``actor_likes`` sorted sets (``{ns}:w:actor_likes:{actor}``, layout of
        ``windows.lua``); this batch's likes are already in them.
        """
        pipe = state.client.pipeline(transaction=False)
        for event in events:
            key = state.key("w", ACTOR_LIKES, event.actor_id)
            for length in self.lengths:
                pipe.zcount(key, f"({event.ts - length:.6f}", f"{event.ts:.6f}")
        with state.timed("churn_likes"):
            flat: list[int] = pipe.execute()
        n = len(self.lengths)
        return [[int(c) for c in flat[i * n : (i + 1) * n]] for i in range(len(events))]

    def model_state(self) -> Any:
        return self.model

    def load_model_state(self, state: Any) -> None:
        if isinstance(state, PopulationQuantiles) and len(state.quantiles()) == len(self.lengths):
            self.model = state
