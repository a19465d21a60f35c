"""An in-process copy of window keys' scores, so counting costs no Redis work.

Windows keyed by the partition key (the actor) are written by one worker at a time: the one
that owns the actor's partition. That worker can keep each key's event times in memory and
count its windows with two binary searches per length, instead of a ``ZCOUNT`` per length in
Redis (Redis CPU per event fell by about a fifth on a replayed day). Redis keeps the
authoritative copy: every entry is still added there (which is also what makes a redelivered
event a no-op), and the windows script sends a key back whole whenever its size or newest score
differs from what this copy expects, so a copy that went stale (first touch, a restart, a
rebalance that gave the actor to another worker and back, a key that expired) is rebuilt before
it is used.

The copy applies the script's own rules: bounds rounded to microseconds as the script
formats them, retention from the key's newest time, and the ``max_members`` cap, applied
once per key at the end of each batch.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Sequence


class ScoreMirror:
    """Sorted event times per key, bounded to ``max_keys`` keys (least recently used go).

    Parameters
    ----------
    retention
        Seconds kept behind a key's newest time (the window family's retention).
    max_members
        Most entries a key keeps (0: no cap), oldest dropped first.
    max_keys
        Most keys held; an evicted key is read back from Redis when it is next touched.
    ttl_refresh_seconds
        How often (wall clock) :meth:`ttl_due` asks for a key's TTL to be renewed.

    Examples
    --------
    >>> mirror = ScoreMirror(retention=3600, max_members=0, max_keys=10)
    >>> mirror.expected("a")
    (-1, 0.0, 0.0)
    >>> mirror.load("a", [100.0, 130.0])
    >>> mirror.add("a", 160.0)
    >>> mirror.counts("a", 160.0, (60, 600))
    (2, 3)
    >>> mirror.trim(["a"])
    >>> mirror.expected("a")
    (3, 160.0, 100.0)
    >>> mirror.ttl_due("a", now=0.0), mirror.ttl_due("a", now=10.0)
    (True, False)
    """

    def __init__(
        self,
        retention: float,
        max_members: int,
        max_keys: int,
        ttl_refresh_seconds: float = 3600.0,
    ) -> None:
        self.retention = retention
        self.max_members = max_members
        self.max_keys = max_keys
        self.ttl_refresh_seconds = ttl_refresh_seconds
        self._scores: dict[str, list[float]] = {}
        #: Wall-clock time each key's TTL was last asked to be renewed.
        self._renewed: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._scores)

    def expected(self, key: str) -> tuple[int, float, float]:
        """What Redis should hold for ``key``: (size, newest, oldest score); size -1 if unknown."""
        scores = self._scores.get(key)
        if scores is None:
            return -1, 0.0, 0.0
        if not scores:
            return 0, 0.0, 0.0
        return len(scores), scores[-1], scores[0]

    def ttl_due(self, key: str, now: float) -> bool:
        """Whether to renew ``key``'s TTL in this batch (then it counts as renewed at ``now``).

        Renewing once per ``ttl_refresh_seconds`` rather than per batch saves Redis a call per
        key and batch; the key then outlives its last update by at least TTL minus that.
        """
        last = self._renewed.get(key)
        if last is not None and now - last < self.ttl_refresh_seconds:
            return False
        self._renewed[key] = now
        return True

    def load(self, key: str, scores: Iterable[float]) -> None:
        """Replace the copy of ``key`` with Redis's scores (in any order)."""
        self._scores.pop(key, None)
        self._scores[key] = sorted(scores)

    def touch(self, key: str) -> None:
        """Mark ``key`` recently used (evicted last)."""
        scores = self._scores.pop(key, None)
        if scores is not None:
            self._scores[key] = scores

    def add(self, key: str, ts: float) -> None:
        """Record an entry Redis reported as added."""
        insort(self._scores[key], ts)

    def counts(self, key: str, ts: float, lengths: Sequence[int]) -> tuple[int, ...]:
        """Entries in ``(ts - length, ts]`` for each length, bounds as the script rounds them."""
        scores = self._scores[key]
        upper = _rank(scores, ts)
        n = len(scores)
        out = []
        # _rank inlined: this runs for every event and length, and the calls were most of it.
        for length in lengths:
            bound = ts - length
            i = bisect_right(scores, bound)
            if (i and scores[i - 1] > bound - 1e-6) or (i < n and scores[i] < bound + 1e-6):
                i = bisect_right(scores, round(bound, 6))
            out.append(upper - i)
        return tuple(out)

    def trim(self, keys: Iterable[str]) -> None:
        """Apply the retention and the cap to ``keys``, as the script does at the batch's end.

        Then drop the least recently used keys beyond ``max_keys`` (only here, so that no key
        goes while its batch is being counted).
        """
        for key in keys:
            scores = self._scores.get(key)
            if not scores:
                continue
            # ZREMRANGEBYSCORE -inf (bound: what is strictly older than the bound goes.
            cut = bisect_left(scores, round(scores[-1] - self.retention, 6))
            if self.max_members > 0:
                cut = max(cut, len(scores) - self.max_members)
            if cut > 0:
                del scores[:cut]
        excess = len(self._scores) - self.max_keys
        if excess > 0:
            for key in list(itertools.islice(self._scores, excess)):
                del self._scores[key]
                self._renewed.pop(key, None)

    def clear(self) -> None:
        """Forget every copy (they are read back from Redis as keys are touched)."""
        self._scores.clear()
        self._renewed.clear()


def _rank(scores: list[float], bound: float) -> int:
    """Entries at or below ``bound`` rounded to microseconds (the script sends "%.6f").

    Rounding moves a bound by at most half a microsecond, so it only matters when an entry
    lies within a microsecond of it; elsewhere the exact bound gives the same answer, without
    the cost of ``round``.

    >>> _rank([1.0, 2.0, 3.0], 1.9999996)  # the bound is sent as 2.000000
    2
    >>> _rank([1.0, 2.0, 3.0], 2.5)
    2
    """
    i = bisect_right(scores, bound)
    if (i and scores[i - 1] > bound - 1e-6) or (i < len(scores) and scores[i] < bound + 1e-6):
        return bisect_right(scores, round(bound, 6))
    return i
