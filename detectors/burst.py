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

* **quick likes**: a like pressed with less than ``quick_dwell_ms`` of dwell on the post was
  not viewed. The account's *quick share* is its quick likes over all its likes, both decayed
  with time constant ``quick_tau_seconds`` (about the last hour). With a quick share of at
  least ``quick_share`` the bar is at most ``quick_relief × peers``, whatever the history
  says. This is what catches a slow takeover (tens of likes an hour, for hours) before the
  account has history: heavy people reach that pace too, but they view most of what they
  like, even in a fast session; a script presses nearly every like without viewing.

The score is the largest count / bar over resolutions, so 1.0 is the threshold.

Cost: Python does one pass over the batch (a dictionary update, one exp and a few comparisons
per like). Redis gets one Lua call per batch (``burst_history.lua``): it returns the history of
the candidates (likes at or above the lowest bar history or a quick share could give) and adds
the batch's likes to the history and quick share of the accounts that record them. Accounts whose
counts stay below ``lowest history bar / history_factor`` everywhere are not recorded: their own
history could never lift their bar above the peer part, and leaving them out keeps the
per-batch writes to the few busy accounts. The quick share covers the recorded likes and the
batch's own: the quick bar sits well above where recording starts (with the defaults, 45 likes
an hour against 12), so an account nearing it has been recorded for most of the way. Keys:
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
    recent_likes, recent_quick
        Likes and quick likes decayed with ``quick_tau_seconds``, as of ``recent_at``.
    recent_at
        Event time of the newest recorded like (``None`` when nothing was recorded).
    """

    scaled_likes: float
    first_seen: float | None
    recent_likes: float = 0.0
    recent_quick: float = 0.0
    recent_at: float | None = None


class _Seen:
    """What one batch says about one account.

    ``recent`` and ``recent_quick`` are its fresh likes and quick likes, each weighted
    ``exp((t - ref) / quick_tau)``: decayed to any time by one factor.
    """

    __slots__ = (
        "fresh",
        "last_fresh",
        "needs_first",
        "newest",
        "oldest",
        "recent",
        "recent_quick",
        "record",
        "ref",
        "want",
    )

    def __init__(self, ts: float) -> None:
        self.fresh = 0
        self.ref = ts
        self.recent = 0.0
        self.recent_quick = 0.0
        self.last_fresh = -1
        self.newest = ts
        self.oldest = ts
        self.want = False
        self.record = False
        self.needs_first = False

    def rebase(self, ts: float, tau: float) -> None:
        """Weigh from ``ts`` on: keeps the weights within a double in a batch spanning ages."""
        keep = math.exp((self.ref - ts) / tau)
        self.recent *= keep
        self.recent_quick *= keep
        self.ref = ts

    def recent_at(self, ts: float, tau: float) -> tuple[float, float]:
        """The batch's likes and quick likes so far, decayed to ``ts`` (not grown when ``ts``
        is before the account's first event in the batch)."""
        keep = math.exp(min(0.0, self.ref - ts) / tau)
        return self.recent * keep, self.recent_quick * keep


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


def quick_share(
    ts: float, history: History | None, fresh: float, quick: float, tau: float
) -> float:
    """Share of the account's recent likes that were quick, at event time ``ts``.

    The recorded counts (decayed to ``ts``) plus the batch's own likes so far, ``fresh``
    likes of which ``quick`` were quick (decayed to ``ts`` too); 0.0 without any like.

    >>> quick_share(100.0, None, 20.0, 19.0, 3600.0)
    0.95
    >>> viewed = History(0.0, None, recent_likes=60.0, recent_quick=3.0, recent_at=100.0)
    >>> round(quick_share(100.0, viewed, 20.0, 19.0, 3600.0), 3)   # an hour of viewed likes before
    0.275
    >>> round(quick_share(100.0 + 4 * 3600, viewed, 20.0, 19.0, 3600.0), 3)  # hours ago: faded
    0.903
    """
    likes, quick_likes = float(fresh), float(quick)
    if history is not None and history.recent_at is not None:
        keep = math.exp(min(0.0, history.recent_at - ts) / tau)
        likes += history.recent_likes * keep
        quick_likes += history.recent_quick * keep
    return quick_likes / likes if likes > 0 else 0.0


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
    ``history_hours`` (how long it was watched before the window), ``history_confidence``,
    ``quick_share`` (share of its recent likes pressed with less than ``quick_dwell_ms`` of
    dwell), ``quick_threshold`` (the bar at the window for a quick share of at least the
    ``quick_share`` setting, ``None`` where quick likes do not lower it), and
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
        # Below this everywhere, an account's own history could never lift its bar above the
        # peer part (history_factor × rate < the lowest peer part), so its likes need not be
        # recorded.
        history_factor = self.config.history_factor
        record_at = [
            p * r / history_factor if history_factor > 0 else math.inf
            for p, r in zip(peers, relief, strict=True)
        ]
        # No history and no quick share can bring a bar below this: events under it at every
        # resolution are not candidates and need no history at all.
        lowest = [
            p * min(r, q) for p, r, q in zip(peers, relief, self.config.quick_relief, strict=True)
        ]
        quick_ms = self.config.quick_dwell_ms
        quick_tau = self.config.quick_tau_seconds
        exp = math.exp
        accounts: dict[str, _Seen] = {}
        # (event index, the account's fresh likes so far in the batch, and its recent likes
        # and quick likes in the batch decayed to the event)
        candidates: list[tuple[int, int, float, float]] = []
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
                # Inline (this runs per like): weigh it exp((ts - ref) / quick_tau).
                shift = (event.ts - seen.ref) / quick_tau
                if shift > 100.0:
                    seen.rebase(event.ts, quick_tau)
                    shift = 0.0
                weight = exp(shift)
                seen.recent += weight
                dwell = event.dwell_ms
                if dwell is not None and dwell < quick_ms:
                    seen.recent_quick += weight
            # Shortest window first; a plain loop is cheaper here than any() over a generator.
            for count, record_bar, low in zip(counts, record_at, lowest):  # noqa: B905
                if count >= record_bar:
                    seen.record = True
                if count >= low:
                    candidates.append((index, seen.fresh, *seen.recent_at(event.ts, quick_tau)))
                    seen.want = True
                    break
        if not accounts:
            return []
        self._learn(batch, accounts)
        watch, histories = self._exchange_history(batch.state, accounts)
        findings: list[Finding] = []
        flagged: set[str] = set()
        for index, fresh_so_far, recent_so_far, quick_so_far in candidates:
            account = batch.events[index].actor_id
            if account in flagged:  # the alert gate keeps one finding per account per batch
                continue
            finding = self._judge(
                batch,
                index,
                (fresh_so_far, recent_so_far, quick_so_far),
                peers,
                lowest,
                watch,
                histories.get(account),
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
        so_far: tuple[int, float, float],
        peers: list[float],
        lowest: list[float],
        watch: float,
        history: History | None,
    ) -> Finding | None:
        fresh_so_far, recent_so_far, quick_so_far = so_far
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
        best: tuple[float, int, WindowVerdict, float | None] | None = None
        gap = self._gap_index
        cfg = self.config
        share: float | None = None  # worked out when a quick bar could matter
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
            bar = verdict.threshold
            quick_bar = peers[r] * cfg.quick_relief[r] if cfg.quick_relief[r] < 1.0 else None
            if quick_bar is not None and quick_bar < bar and count >= quick_bar:
                if share is None:
                    share = quick_share(
                        event.ts, history, recent_so_far, quick_so_far, cfg.quick_tau_seconds
                    )
                if share >= cfg.quick_share:
                    bar = quick_bar
            ratio = count / bar
            if best is None or ratio > best[0]:
                best = (ratio, r, verdict, quick_bar)
        if best is None or best[0] < 1.0:
            return None
        ratio, r, verdict, quick_bar = best
        if share is None:
            share = quick_share(
                event.ts, history, recent_so_far, quick_so_far, cfg.quick_tau_seconds
            )
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
                "threshold": round(counts[r] / ratio, 3),
                "population_threshold": round(verdict.peers, 3),
                "population_quantile": round(self.model.quantiles()[r], 3),
                "quantile": self.config.quantile,
                "own_expected_likes": round(verdict.own_expected, 3),
                "history_hours": round(max(0.0, event.ts - max(length, gap_s) - since) / 3600, 3),
                "history_confidence": round(verdict.confidence, 3),
                "quick_share": round(share, 3),
                "quick_threshold": None if quick_bar is None else round(quick_bar, 3),
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
            self.config.quick_tau_seconds,
            len(record),
        ]
        for account, seen in record:
            oldest = repr(seen.oldest) if seen.needs_first else ""
            likes, quick_likes = seen.recent_at(seen.newest, self.config.quick_tau_seconds)
            args += [account, seen.fresh, repr(likes), repr(quick_likes), repr(seen.newest), oldest]
        args += wanted
        with state.timed("burst_history"):
            flat: list[bytes] = self._history_script(state)(keys=[], args=args)
        watch = float(flat[0])
        histories: dict[str, History] = {}
        for position, account in enumerate(wanted):
            base = 1 + 5 * position
            scaled, first, recent, quick, recent_at = flat[base : base + 5]
            if scaled or first or recent_at:
                histories[account] = History(
                    float(scaled) if scaled else 0.0,
                    float(first) if first else None,
                    float(recent) if recent else 0.0,
                    float(quick) if quick else 0.0,
                    float(recent_at) if recent_at else None,
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
