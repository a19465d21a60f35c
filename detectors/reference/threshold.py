"""Fixed per-window like-count threshold: the simplest rule a platform can deploy.

An account is flagged as soon as it has pressed *like* at least ``threshold`` times within
``window`` seconds of event time. This is the baseline likeguard's burst detector has to beat:
one global number, no per-account history, no population baseline.

Window semantics
----------------
``mode="sliding"`` (the default) looks at every window that ends at one of the account's likes,
i.e. the half-open interval ``(t - window, t]``: two likes are in a common window iff they are
less than ``window`` seconds apart. This is the strictest reading of "in any window of W
seconds" and does not depend on where window boundaries fall; it is also how likeguard's own
Redis windows behave, so the delays are comparable.

``mode="tumbling"`` cuts time into fixed windows ``[k * window, (k + 1) * window)`` aligned to
the epoch. A burst that straddles a boundary can be missed, which is why it is not the default;
it is there because many deployed rate limits work that way.

Counting
--------
Only ``like`` events count; an ``unlike`` does not take a like back (the rule counts button
presses, and a like/unlike cycler should not escape a rate rule by cycling). Redelivered events
(same ``event_id``) count once. The detection time of a flagged account is the ``ts`` of the
like that first brought a window's count to ``threshold``.

"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from detectors.reference._common import like_records

__all__ = ["ThresholdHit", "ThresholdResult", "run_threshold"]

Mode = Literal["sliding", "tumbling"]


@dataclass(frozen=True, slots=True)
class ThresholdHit:
    """Why one account was flagged.

    Attributes
    ----------
    account_id
        The flagged account.
    first_detected
        Event time of the like that first brought a window's count to the threshold.
    window_start
        Start of that window: ``first_detected - window`` (exclusive) when sliding, the
        window's aligned start (inclusive) when tumbling.
    max_count
        The most likes the account has in any one window over the whole capture.
    total_likes
        All the account's likes in the capture.

    """

    account_id: str
    first_detected: float
    window_start: float
    max_count: int
    total_likes: int


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    """Output of :func:`run_threshold`.

    ``scores`` holds each flagged account's ``max_count``; ``first_detection`` its
    ``first_detected``.

    """

    hits: dict[str, ThresholdHit]
    window: float
    threshold: int
    mode: Mode
    scores: dict[str, float] = field(init=False)
    first_detection: dict[str, float] = field(init=False)
    flagged: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        # Frozen dataclass: the derived views are set once, here.
        object.__setattr__(self, "flagged", frozenset(self.hits))
        object.__setattr__(self, "scores", {a: float(h.max_count) for a, h in self.hits.items()})
        object.__setattr__(
            self, "first_detection", {a: h.first_detected for a, h in self.hits.items()}
        )


def run_threshold(
    events: Iterable[Mapping[str, Any]],
    *,
    window: float = 600.0,
    threshold: int = 30,
    mode: Mode = "sliding",
) -> ThresholdResult:
    """Flag every account with at least ``threshold`` likes in some ``window``-second window.

    Parameters
    ----------
    events
        Like/unlike event dicts (contract format, ``ts`` in epoch seconds). Other record types
        are ignored; the order does not matter.
    window
        Window length in seconds.
    threshold
        Likes per window at which an account is flagged.
    mode
        ``"sliding"`` (windows ``(t - window, t]`` ending at every like) or ``"tumbling"``
        (epoch-aligned windows ``[k * window, (k + 1) * window)``).

    Returns
    -------
    ThresholdResult
        The flagged accounts with their first crossing time and peak window count.

    Examples
    --------
    Four likes within 20 s trip a threshold of 3 per 60 s at the third like; "b" never has
    three likes less than 60 s apart.

    >>> likes = [("a", 50.0), ("a", 55.0), ("a", 65.0), ("a", 70.0),
    ...          ("b", 0.0), ("b", 30.0), ("b", 60.0), ("b", 90.0)]
    >>> events = [{"type": "like", "actor_id": a, "post_id": f"p{i}", "ts": t}
    ...           for i, (a, t) in enumerate(likes)]
    >>> res = run_threshold(events, window=60, threshold=3)
    >>> sorted(res.flagged)
    ['a']
    >>> res.hits["a"]
    ThresholdHit(account_id='a', first_detected=65.0, window_start=5.0, max_count=4, total_likes=4)

    Epoch-aligned tumbling windows cut the burst of "a" in two at ``t = 60`` and miss it:

    >>> sorted(run_threshold(events, window=60, threshold=3, mode="tumbling").flagged)
    []

    """
    if not window > 0:
        raise ValueError(f"window must be positive, got {window!r}")
    if threshold < 1:
        raise ValueError(f"threshold must be at least 1, got {threshold!r}")
    if mode not in ("sliding", "tumbling"):
        raise ValueError(f"mode must be 'sliding' or 'tumbling', got {mode!r}")

    times: defaultdict[str, list[float]] = defaultdict(list)
    for rec in like_records(events):
        if rec.is_like:
            times[rec.actor_id].append(rec.ts)  # already in event-time order

    hits: dict[str, ThresholdHit] = {}
    for account, ts_list in times.items():
        if len(ts_list) < threshold:
            continue
        ts = np.asarray(ts_list, dtype=np.float64)
        hit = (_sliding if mode == "sliding" else _tumbling)(account, ts, window, threshold)
        if hit is not None:
            hits[account] = hit
    return ThresholdResult(
        hits=dict(sorted(hits.items())), window=float(window), threshold=threshold, mode=mode
    )


def _sliding(
    account: str, ts: NDArray[np.float64], window: float, threshold: int
) -> ThresholdHit | None:
    # counts[i] = likes in (ts[i] - window, ts[i]] among ts[: i + 1]. With ties the earlier of
    # two equal timestamps is undercounted, but the later one carries the full count at the
    # same time, so the first crossing time and the maximum are exact.
    starts = np.searchsorted(ts, ts - window, side="right")
    counts = np.arange(1, ts.size + 1) - starts
    crossed = np.flatnonzero(counts >= threshold)
    if crossed.size == 0:
        return None
    first = float(ts[crossed[0]])
    return ThresholdHit(account, first, first - window, int(counts.max()), int(ts.size))


def _tumbling(
    account: str, ts: NDArray[np.float64], window: float, threshold: int
) -> ThresholdHit | None:
    buckets = np.floor(ts / window)
    keys, first_idx, counts = np.unique(buckets, return_index=True, return_counts=True)
    over = np.flatnonzero(counts >= threshold)
    if over.size == 0:
        return None
    b = over[0]  # buckets are in time order, so the earliest full bucket crosses first
    first = float(ts[first_idx[b] + threshold - 1])
    return ThresholdHit(account, first, float(keys[b] * window), int(counts.max()), int(ts.size))
