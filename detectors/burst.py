"""Burst liking: one account liking far above its own history and its peers.

At every window resolution (minutes to a day) the account's like count in the window ending at
the event is compared with a bar made of two parts:

* **peers**: ``max(min_likes, quantile_factor × population quantile)``, the quantile learned
  online (River P² quantile) from every account's counts, about once per account per
  ``learn_window_seconds`` of activity (so the quantile is over accounts, not likes);
* **own history**: the account's long-run like rate, a decayed like count in Redis (time
  constant ``history_tau_seconds``) over the time the pipeline has been watching the account
  (since the namespace first saw a like, or since the account's creation if later). Only likes
  before the window, and before the last ``history_gap_seconds``, count as history, so a burst
  never raises its own bar.

The history is trusted in proportion to how long the account has been watched, ``confidence =
watched / (watched + history_prior_seconds)``; the bar is

    max(peers × (1 − confidence × (1 − quiet_relief)), history_factor × own expected count)

A quiet, well-known account meets a lower peer bar (down to ``quiet_relief × peers``) and is
flagged sooner; a habitually heavy liker is judged against ``history_factor ×`` its own usual
count, so its normal day is not a burst; an account without history meets the peer bar alone.
The score is the largest count / bar over resolutions, so 1.0 is the threshold.

Cost: Python does one pass over the batch (a dictionary update and a few comparisons per like).
Redis gets one Lua call per batch (``burst_history.lua``): it returns the history of the
candidates (likes at or above the lowest bar history could give) and adds the batch's likes to
the history of the accounts that record them. Accounts whose counts stay below ``lowest bar /
history_factor`` everywhere are not recorded: their own history could never lift their bar above
the peer part, and leaving them out keeps the per-batch writes to the few busy accounts. Keys:
``{ns}:burst:hist:{account}`` (hash, TTL) and ``{ns}:burst:watch``; see ``docs/redis-keys.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

from redis.commands.core import Script

from detectors.base import ACTOR_LIKES, Batch, Detector, Finding, actor_finding, sampled
from detectors.config import BurstConfig
from detectors.models import PopulationQuantiles
from detectors.state import RedisState
from detectors.windows import ADDED, LATE


@dataclass(frozen=True, slots=True)
class History:
    """An account's recorded like history, as stored before the current batch.

    Attributes
    ----------
    scaled_likes
        Decayed like count scaled to the watch start: the count at time ``t`` is
        ``scaled_likes * exp(-(t - watch) / tau)``.
    first_seen
        Event time the account was first recorded (``None`` when not kept).
    """

    scaled_likes: float
    first_seen: float | None


class _Seen:
    """What one batch says about one account."""

    __slots__ = ("fresh", "last_fresh", "needs_first", "newest", "oldest", "record", "want")

    def __init__(self, ts: float) -> None:
        self.fresh = 0
        self.last_fresh = -1
        self.newest = ts
        self.oldest = ts
        self.want = False
        self.record = False
        self.needs_first = False


@dataclass(frozen=True, slots=True)
class WindowVerdict:
    """The threshold of one window resolution and what it was made of."""

    threshold: float
    peers: float
    own_expected: float
    confidence: float


def judge_window(
    length: float,
    peers: float,
    likes_before: float,
    watched: float,
    config: BurstConfig,
    relief: float,
) -> WindowVerdict:
    """Threshold for one window from the peer bar and the account's own history.

    Parameters
    ----------
    length
        Window length in seconds.
    peers
        The population threshold at this resolution.
    likes_before
        Decayed likes of the account before the window.
    watched
        Seconds the account was watched before the window (decay applied).
    config
        Burst settings (``history_prior_seconds``, ``history_factor``).
    relief
        Share of ``peers`` a fully trusted quiet history brings the bar down to.

    Examples
    --------
    >>> cfg = BurstConfig()
    >>> unknown = judge_window(3600, 150.0, 0.0, 0.0, cfg, 0.4)
    >>> unknown.threshold                      # no history: the peer bar alone
    150.0
    >>> quiet = judge_window(3600, 150.0, 2.0, 5 * 3600, cfg, 0.4)
    >>> round(quiet.threshold, 1)              # watched for hours, nearly silent: lower bar
    75.0
    >>> heavy = judge_window(3600, 150.0, 300.0, 5 * 3600, cfg, 0.4)
    >>> round(heavy.threshold, 1)              # 60 likes an hour is its normal: higher bar
    300.0
    """
    prior = config.history_prior_seconds
    confidence = watched / (watched + prior)
    # Below `prior` of watching, the few likes seen are spread over `prior` rather than
    # extrapolated: a barely known account must not look habitually heavy.
    own_expected = likes_before / max(watched, prior) * length
    peer_bar = peers * (1.0 - confidence * (1.0 - relief))
    return WindowVerdict(
        threshold=max(peer_bar, config.history_factor * own_expected),
        peers=peers,
        own_expected=own_expected,
        confidence=confidence,
    )


def decayed_span(seconds: float, tau: float) -> float:
    """Seconds of watching, weighted like the decayed like count (at most ``tau``).

    >>> round(decayed_span(3600, 604800), 1), decayed_span(-5, 604800)
    (3589.3, 0.0)
    """
    if seconds <= 0:
        return 0.0
    return tau * -math.expm1(-seconds / tau)


class BurstDetector(Detector):
    """Flags accounts liking far above their own history and their peers.

    Parameters
    ----------
    config
        ``[burst]`` settings.
    lengths
        Window lengths (seconds) of the ``actor_likes`` counts.

    Evidence of a finding: ``window_seconds``, ``likes_in_window``, ``threshold`` (the bar that
    was crossed), ``population_threshold`` and ``population_quantile``/``quantile`` (the peer
    part), ``own_expected_likes`` (what the account's own history predicts for the window),
    ``history_hours`` (how long it was watched before the window), ``history_confidence``, and
    ``likes_by_window``.
    """

    name: ClassVar[str] = "burst"

    def __init__(self, config: BurstConfig, lengths: tuple[int, ...]) -> None:
        self.config = config
        self.lengths = lengths
        self.model = PopulationQuantiles(len(lengths), config.quantile)
        if config.learn_window_seconds not in lengths:
            raise ValueError("burst.learn_window_seconds must be one of the window lengths")
        self._learn_index = lengths.index(config.learn_window_seconds)
        if config.history_gap_seconds not in lengths:
            raise ValueError("burst.history_gap_seconds must be one of the window lengths")
        self._gap_index = lengths.index(config.history_gap_seconds)
        self._script: Script | None = None
        self._script_client: object = None

    def detect(self, batch: Batch) -> list[Finding]:
        windows = batch.windows[ACTOR_LIKES]
        factor = self.config.quantile_factor
        relief = self.config.quiet_relief
        peers = [
            max(float(floor), factor * q)
            for floor, q in zip(self.config.min_likes, self.model.quantiles(), strict=True)
        ]
        # No history can bring a bar below this: events under it at every resolution are
        # not candidates and need no history at all.
        lowest = [p * r for p, r in zip(peers, relief, strict=True)]
        # Below this everywhere, an account's own history could never lift its bar above the
        # peer part (history_factor × rate < lowest), so its likes need not be recorded.
        history_factor = self.config.history_factor
        record_at = [low / history_factor if history_factor > 0 else math.inf for low in lowest]
        accounts: dict[str, _Seen] = {}
        candidates: list[tuple[int, int]] = []  # (event index, account's fresh likes so far)
        for index, event in enumerate(batch.events):
            window = windows[index]
            if window is None or window.status == LATE:
                continue
            seen = accounts.get(event.actor_id)
            if seen is None:
                seen = accounts[event.actor_id] = _Seen(event.ts)
            counts = window.counts
            if window.status == ADDED:
                seen.fresh += 1
                seen.last_fresh = index
                if event.ts > seen.newest:
                    seen.newest = event.ts
                elif event.ts < seen.oldest:
                    seen.oldest = event.ts
                if event.actor_created_at is None:
                    seen.needs_first = True
            # Shortest window first; a plain loop is cheaper here than any() over a generator.
            for count, record_bar, low in zip(counts, record_at, lowest):  # noqa: B905
                if count >= record_bar:
                    seen.record = True
                if count >= low:
                    candidates.append((index, seen.fresh))
                    seen.want = True
                    break
        if not accounts:
            return []
        self._learn(batch, accounts)
        watch, histories = self._exchange_history(batch.state, accounts)
        findings: list[Finding] = []
        flagged: set[str] = set()
        for index, fresh_so_far in candidates:
            account = batch.events[index].actor_id
            if account in flagged:  # the alert gate keeps one finding per account per batch
                continue
            finding = self._judge(
                batch, index, fresh_so_far, peers, lowest, watch, histories.get(account)
            )
            if finding is not None:
                findings.append(finding)
                flagged.add(account)
        return findings

    def _learn(self, batch: Batch, accounts: dict[str, _Seen]) -> None:
        """Teach the peer quantile about once per account per ``learn_window`` of activity.

        Each account with fresh likes is sampled at its last one, with probability (its fresh
        likes in the batch / its likes in the learn window): the quantile is over accounts, so
        a bot's hundreds of likes cannot drag its own bar up, whatever the batch size.
        """
        windows = batch.windows[ACTOR_LIKES]
        learn_index, fraction = self._learn_index, self.config.learn_fraction
        for seen in accounts.values():
            if seen.fresh == 0:
                continue
            window = windows[seen.last_fresh]
            assert window is not None
            counts = window.counts
            share = fraction * seen.fresh / max(1, counts[learn_index])
            if sampled(batch.events[seen.last_fresh].event_id, share):
                self.model.learn_one(counts)

    def _judge(
        self,
        batch: Batch,
        index: int,
        fresh_so_far: int,
        peers: list[float],
        lowest: list[float],
        watch: float,
        history: History | None,
    ) -> Finding | None:
        event = batch.events[index]
        window = batch.windows[ACTOR_LIKES][index]
        assert window is not None
        counts = window.counts
        tau = self.config.history_tau_seconds
        # Watched since the later of: this namespace starting to watch, the account's creation
        # (or, when unknown, its first like seen).
        if event.actor_created_at is not None:
            since = max(watch, event.actor_created_at)
        elif history is not None and history.first_seen is not None:
            since = history.first_seen
        else:
            since = event.ts
        likes_now = 0.0
        if history is not None:
            likes_now = history.scaled_likes * math.exp((watch - event.ts) / tau)
        best: tuple[float, int, WindowVerdict] | None = None
        gap = self._gap_index
        for r, (count, length) in enumerate(zip(counts, self.lengths, strict=True)):
            if count < lowest[r]:  # no history brings the bar this low
                continue
            # History is what came before the window, and never the last `history_gap`: a
            # burst's first minutes must not become the "usual" its next minute is judged by.
            recent, span = (counts[gap], self.lengths[gap]) if r < gap else (count, length)
            # Of those recent likes, the ones counted in this batch are not in the history yet.
            in_history = max(0, recent - fresh_so_far)
            verdict = judge_window(
                length,
                peers[r],
                max(0.0, likes_now - in_history),
                decayed_span(event.ts - span - since, tau),
                self.config,
                self.config.quiet_relief[r],
            )
            ratio = count / verdict.threshold
            if best is None or ratio > best[0]:
                best = (ratio, r, verdict)
        if best is None or best[0] < 1.0:
            return None
        ratio, r, verdict = best
        length = self.lengths[r]
        gap_s = self.lengths[gap]
        return actor_finding(
            self.name,
            event,
            ratio,
            length,
            {
                "window_seconds": length,
                "likes_in_window": counts[r],
                "threshold": round(verdict.threshold, 3),
                "population_threshold": round(verdict.peers, 3),
                "population_quantile": round(self.model.quantiles()[r], 3),
                "quantile": self.config.quantile,
                "own_expected_likes": round(verdict.own_expected, 3),
                "history_hours": round(max(0.0, event.ts - max(length, gap_s) - since) / 3600, 3),
                "history_confidence": round(verdict.confidence, 3),
                "likes_by_window": {str(n): c for n, c in zip(self.lengths, counts, strict=True)},
            },
        )

    def _exchange_history(
        self, state: RedisState, accounts: dict[str, _Seen]
    ) -> tuple[float, dict[str, History]]:
        """One round trip: the wanted histories, and the batch's likes recorded."""
        record = [(a, s) for a, s in accounts.items() if s.record and s.fresh]
        wanted = [a for a, s in accounts.items() if s.want]
        args: list[str | int | float] = [
            state.namespace,
            self.config.history_tau_seconds,
            self.config.history_ttl_seconds,
            repr(min(s.oldest for s in accounts.values())),
            len(record),
        ]
        for account, seen in record:
            oldest = repr(seen.oldest) if seen.needs_first else ""
            args += [account, seen.fresh, repr(seen.newest), oldest]
        args += wanted
        with state.timed("burst_history"):
            flat: list[bytes] = self._history_script(state)(keys=[], args=args)
        watch = float(flat[0])
        histories: dict[str, History] = {}
        for position, account in enumerate(wanted):
            scaled, first = flat[1 + 2 * position], flat[2 + 2 * position]
            if scaled or first:
                histories[account] = History(
                    float(scaled) if scaled else 0.0, float(first) if first else None
                )
        return watch, histories

    def _history_script(self, state: RedisState) -> Script:
        if self._script is None or self._script_client is not state.client:
            text = resources.files("detectors").joinpath("burst_history.lua").read_text("utf-8")
            self._script = state.client.register_script(text)
            self._script_client = state.client
        return self._script

    def model_state(self) -> Any:
        return self.model

    def load_model_state(self, state: Any) -> None:
        if isinstance(state, PopulationQuantiles) and len(state.quantiles()) == len(self.lengths):
            self.model = state
