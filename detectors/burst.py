"""Burst liking: one account liking far above its own history and its peers.

At every window resolution (minutes to a day) the account's like count in the window ending at
the event is compared with a threshold made of two parts:

* **peers**: ``max(min_likes, quantile_factor × population quantile)``, the quantile learned
  online (River P² quantile) from every account's counts;
* **own history**: the account's long-run like rate, kept in Redis as a decayed like count
  (time constant ``history_tau_seconds``) and the time the pipeline has been watching the
  account. The history *before* the window is what counts, so a burst never raises its own
  bar.

The account's history is trusted in proportion to how long it has been watched, ``confidence =
watched / (watched + history_prior_seconds)``. A quiet, well-known account meets a lower peer
bar (down to ``quiet_relief × peers``) and is flagged sooner; a habitually heavy liker is judged
against ``history_factor ×`` its own usual count, so its normal day is not a burst; an account
without history is judged against its peers alone. The score is the largest count / threshold
over resolutions, so 1.0 is the threshold.

Redis: one Lua call per batch (``burst_history.lua``) reads every candidate's history and folds
the batch's fresh likes into the history of every account that liked, so each account's hash
is updated once per batch. Keys: ``{ns}:burst:hist:{account}`` (hash ``s``, ``t``, ``f``, with
a TTL) and ``{ns}:burst:watch``; see ``docs/redis-keys.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

from redis.commands.core import Script

from detectors.base import ACTOR_LIKES, Batch, Detector, Finding, sampled
from detectors.config import BurstConfig
from detectors.models import PopulationQuantiles
from detectors.state import RedisState
from detectors.windows import ADDED, LATE


@dataclass(frozen=True, slots=True)
class History:
    """An account's own like history as stored before the current batch.

    Attributes
    ----------
    likes
        Decayed like count: each like counts 1, fading as ``exp(-age / tau)``.
    updated
        Event time ``likes`` refers to (the newest like folded in).
    first_seen
        Event time the account was first seen liking.
    """

    likes: float
    updated: float
    first_seen: float


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
        # account -> [fresh likes, newest ts, oldest ts, wants history]
        accounts: dict[str, list[Any]] = {}
        candidates: list[tuple[int, int]] = []  # (event index, account's fresh likes so far)
        for index, event in enumerate(batch.events):
            window = windows[index]
            if window is None or window.status == LATE:
                continue
            entry = accounts.get(event.actor_id)
            if entry is None:
                entry = accounts[event.actor_id] = [0, event.ts, event.ts, False]
            counts = window.counts
            if window.status == ADDED:
                entry[0] += 1
                entry[1] = max(entry[1], event.ts)
                entry[2] = min(entry[2], event.ts)
                # About one sample per account per `learn_window`: the peer quantile is over
                # accounts, so a bot's hundreds of likes cannot drag its own bar up.
                share = self.config.learn_fraction / max(1, counts[self._learn_index])
                if sampled(event.event_id, share):
                    self.model.learn_one(counts)
            for count, low in zip(counts, lowest, strict=True):
                if count >= low:
                    candidates.append((index, entry[0]))
                    entry[3] = True
                    break
        if not accounts:
            return []
        watch, histories = self._exchange_history(batch.state, accounts)
        findings: list[Finding] = []
        for index, fresh_so_far in candidates:
            finding = self._judge(
                batch,
                index,
                fresh_so_far,
                peers,
                watch,
                histories.get(batch.events[index].actor_id),
            )
            if finding is not None:
                findings.append(finding)
        return findings

    def _judge(
        self,
        batch: Batch,
        index: int,
        fresh_so_far: int,
        peers: list[float],
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
        else:
            since = history.first_seen if history is not None else event.ts
        likes_now = 0.0
        if history is not None:
            likes_now = history.likes * math.exp(min(0.0, history.updated - event.ts) / tau)
        best: tuple[float, int, WindowVerdict] | None = None
        gap = self._gap_index
        for r, (count, length) in enumerate(zip(counts, self.lengths, strict=True)):
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
        assert best is not None
        ratio, r, verdict = best
        if ratio < 1.0:
            return None
        length = self.lengths[r]
        gap_s = self.lengths[gap]
        return Finding(
            detector=self.name,
            subject_kind="account",
            subject_id=event.actor_id,
            accounts=(event.actor_id,),
            score=ratio,
            event_time=event.ts,
            window_start=event.ts - length,
            window_end=event.ts,
            trigger_event_id=event.event_id,
            evidence={
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
        self, state: RedisState, accounts: dict[str, list[Any]]
    ) -> tuple[float, dict[str, History]]:
        """One round trip: histories of the candidates, and the batch's likes learned."""
        args: list[str | int | float] = [
            state.namespace,
            self.config.history_tau_seconds,
            self.config.history_ttl_seconds,
            repr(min(entry[2] for entry in accounts.values())),
        ]
        wanted: list[str] = []
        for account, (fresh, newest, oldest, want) in accounts.items():
            if fresh == 0 and not want:
                continue
            args += [account, fresh, repr(newest), repr(oldest), 1 if want else 0]
            if want:
                wanted.append(account)
        script = self._history_script(state)
        with state.timed("burst_history"):
            flat: list[bytes] = script(keys=[], args=args)
        watch = float(flat[0])
        histories: dict[str, History] = {}
        for position, account in enumerate(wanted):
            likes, updated, first = flat[1 + 3 * position : 4 + 3 * position]
            if likes:
                histories[account] = History(float(likes), float(updated), float(first))
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
