"""Pure arithmetic of the benchmark: percentiles, rates, Prometheus text, key families.

Nothing here touches the network, the clock or the file system, so all of it is unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated between ranks.

    The same definition as ``numpy.percentile(values, q)`` (its default "linear" method).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    >>> percentile([5.0], 99)
    5.0
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    weight = rank - low
    return float(ordered[low] * (1.0 - weight) + ordered[high] * weight)


def rate(count: float, seconds: float) -> float:
    """Events per second; 0.0 when no time passed (never a division by zero)."""
    return count / seconds if seconds > 0 else 0.0


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


@dataclass(frozen=True, slots=True)
class Sample:
    """One scrape of a worker's progress: events counted so far and when its last batch ended.

    ``last_processed`` is the worker's ``likeguard_last_processed_timestamp_seconds``: the wall
    time at which the batch that brought the counter to ``events`` finished.
    """

    events: float
    last_processed: float
    #: ``likeguard_event_time_lag_seconds``: wall clock minus the newest event time processed.
    lag: float = 0.0
    #: ``likeguard_swarm_stage_likes_total``: likes through the swarm stage (the worker that
    #: holds it counts them; the bare agent has none).
    stage_likes: float = 0.0


@dataclass(frozen=True, slots=True)
class Span:
    """Throughput between the first and the last processed batch seen by the poller."""

    events: float
    seconds: float

    @property
    def per_second(self) -> float:
        return rate(self.events, self.seconds)


def throughput_span(first: Sequence[Sample], last: Sequence[Sample]) -> Span:
    """Throughput of a group of workers from two rounds of scrapes (one sample per worker).

    ``first`` is the first round in which any worker had processed something, ``last`` the
    final round. Counting starts *after* the first batch (its events and its time are both
    left out), so the consumer-group join before it never enters the figure.

    >>> span = throughput_span([Sample(1000, 10.0)], [Sample(21000, 12.0)])
    >>> span.per_second
    10000.0
    """
    started = [s.last_processed for s in first if s.events > 0]
    if not started:
        raise ValueError("no worker had processed anything in the first round")
    ended = [s.last_processed for s in last if s.events > 0]
    events = sum(s.events for s in last) - sum(s.events for s in first)
    return Span(events=events, seconds=max(ended) - max(started))


def parse_prometheus(text: str) -> dict[str, float]:
    r"""Sum every sample of the exposition ``text`` by metric name (labels are summed over).

    >>> parse_prometheus('# HELP x\nx_total{a="1"} 2.0\nx_total{a="2"} 3.0\ny 4\n')
    {'x_total': 5.0, 'y': 4.0}
    """
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        name = sample.split("{", 1)[0]
        try:
            number = float(value)
        except ValueError:
            continue
        totals[name] = totals.get(name, 0.0) + number
    return totals


def by_label(text: str, name: str, label: str) -> dict[str, float]:
    r"""Samples of metric ``name`` in exposition ``text``, summed by the value of ``label``.

    >>> by_label('d_sum{operation="windows"} 2.5\nd_sum{operation="cooldown"} 0.5\n',
    ...          "d_sum", "operation")
    {'windows': 2.5, 'cooldown': 0.5}
    """
    out: dict[str, float] = {}
    needle = f'{label}="'
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        sample, _, value = line.rpartition(" ")
        labels = sample[len(name) + 1 : -1]
        start = labels.find(needle)
        if start < 0:
            continue
        start += len(needle)
        key = labels[start : labels.index('"', start)]
        out[key] = out.get(key, 0.0) + float(value)
    return out


def classify_key(key: str, namespace: str, accounts: Set[str], posts: Set[str]) -> tuple[str, str]:
    """(family, subject) of a Redis key of ``namespace``.

    The family is the key up to its first part that is a known account or post id, and the
    subject says which (``account`` or ``post``). A key with no known id is ``other``, its
    family everything but the last part (an event id, a group id, …) or, for a singleton such
    as ``models``, the key itself.

    >>> classify_key("ns:w:actor_likes:u1", "ns", {"u1"}, set())
    ('w:actor_likes', 'account')
    >>> classify_key("ns:outbox:follow-up:p:p9:x", "ns", set(), {"p9"})
    ('outbox:follow-up:p', 'post')
    >>> classify_key("ns:outbox:e77", "ns", set(), set())
    ('outbox', 'other')
    >>> classify_key("ns:models", "ns", set(), set())
    ('models', 'other')
    """
    prefix = namespace + ":"
    if not key.startswith(prefix):
        raise ValueError(f"key {key!r} is not under namespace {namespace!r}")
    parts = key[len(prefix) :].split(":")
    for index in range(1, len(parts)):
        if parts[index] in accounts:
            return ":".join(parts[:index]), "account"
        if parts[index] in posts:
            return ":".join(parts[:index]), "post"
    return ":".join(parts[:-1] if len(parts) > 1 else parts), "other"


@dataclass(slots=True)
class FamilyUsage:
    """Memory of one key family: how many keys, their bytes, and what their ids name."""

    family: str
    keys: int = 0
    bytes: int = 0
    account_ids: int = 0
    post_ids: int = 0

    @property
    def subject(self) -> str:
        """``account`` or ``post`` when most of its ids are such ids, else ``other``."""
        if self.account_ids * 2 > self.keys:
            return "account"
        if self.post_ids * 2 > self.keys:
            return "post"
        return "other"


def usage_by_family(
    sizes: Iterable[tuple[str, int]],
    namespace: str,
    accounts: Set[str],
    posts: Set[str],
) -> dict[str, FamilyUsage]:
    """Group ``(key, bytes)`` pairs by family and tell account- from post-keyed families.

    A family is attributed to accounts (or posts) when most of its key ids are known account
    (post) ids, so families added by new detectors are classified without a list to maintain.
    """
    families: dict[str, FamilyUsage] = {}
    for key, size in sizes:
        family, subject = classify_key(key, namespace, accounts, posts)
        usage = families.setdefault(family, FamilyUsage(family))
        usage.keys += 1
        usage.bytes += size
        if subject == "account":
            usage.account_ids += 1
        elif subject == "post":
            usage.post_ids += 1
    return families


def bytes_per_subject(
    families: Mapping[str, FamilyUsage], subject: str, active: int
) -> float | None:
    """Bytes of every family attributed to ``subject``, per active subject."""
    total = sum(u.bytes for u in families.values() if u.subject == subject)
    return ratio(total, active)
