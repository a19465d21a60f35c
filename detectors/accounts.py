"""Shared pieces of the account-centred detectors (``new_account_spike``, ``fan_imbalance``).

* :class:`PostLikers`: distinct likers per post over the last day, kept in Redis once per
  batch for both detectors.
* :func:`account_age`: age of the liking account at the like, from the event's
  ``actor_created_at`` or the stored account snapshot.
* :class:`TierQuantiles`: River quantiles of an engagement ratio, one per follower tier.
* :class:`SuspectReports`: incremental reporting of a subject's suspicious likers. A post that
  is being farmed keeps receiving fake likes after its first alert; follow-up alerts (one per
  ``report_every`` seconds while new suspects arrive) name the likers that came since, so the
  whole farm is implicated, not only the part that had liked by the first alert.

Redis layout of the reports (``{p}`` is the detector's key prefix, ``{s}`` a subject such as
``p:{post_id}`` or ``a:{author_id}``):

``{ns}:{p}:sus:{s}``
    sorted set, suspicious liker -> time of their latest like (written by the detector's own
    batch script), trimmed to the detector's look-back and capped in size.
``{ns}:{p}:rep:{s}``
    hash: ``until`` (suspects up to this event time are reported), ``from`` (where the report
    started), ``author``, ``first`` (event time of the first alert), ``n`` (suspects reported
    so far).
``{ns}:{p}:named:{s}``
    set of the suspects the report has named. A suspect liked in ``(from, until]`` that is not
    in it was written after the report passed its time (by another worker, behind in event
    time) and is named by the next request, ahead of the new ones.
``{ns}:{p}:due``
    sorted set, subject -> event time its next follow-up is due.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, ClassVar

from redis.commands.core import Script
from river import stats

from detectors.config import WindowsConfig
from detectors.state import RedisState, script_json

if TYPE_CHECKING:
    from detectors.base import Batch

#: Lengths (seconds) of the distinct-liker counts: "recent" (the last hour) and "the day".
LIKER_WINDOWS: tuple[int, int] = (3600, 86400)
RECENT, DAY = 0, 1


@dataclass(frozen=True, slots=True)
class PostActivity:
    """One post's last like in a batch (``index``), its distinct likers in the day then, and
    how many of them the batch added (``likers - added`` were its likers before it)."""

    index: int
    likers: int
    added: int = 0


class PostLikers:
    """Distinct likers per post (``{ns}:likers:{post_id}``), shared by the detectors of a batch.

    Kept in Redis by the first detector to ask for a batch (in its ``prepare``, before the
    detectors judge the batch in their threads); later calls get the same answer from a
    one-batch cache, so the work is done once. Per batch the cost is one Lua call doing
    two commands per *post* of the batch (not per like: add and count; trim and expire every
    32 likers), which is why this is not a window family: those count every event at its own
    time, at several times the cost. Counts over shorter spans are taken by the callers, only
    for the posts they judge.

    Parameters
    ----------
    config
        ``[windows]``: ``retention_seconds`` (how long likers are kept, at least the day),
        ``max_members`` (most likers kept per post) and ``key_ttl_seconds``.
    """

    _cache: ClassVar[tuple[object, str, dict[str, PostActivity]] | None] = None
    _scripts: ClassVar[dict[int, Script]] = {}

    def __init__(self, config: WindowsConfig) -> None:
        self.retention = max(config.retention_seconds, LIKER_WINDOWS[DAY])
        self.cap = config.max_members
        self.ttl = config.key_ttl_seconds

    def activity(self, batch: Batch) -> dict[str, PostActivity]:
        """Per post liked in ``batch``, its activity (one Redis call per batch, shared)."""
        cached = PostLikers._cache
        if cached is not None and cached[0] is batch.events and cached[1] == batch.state.namespace:
            return cached[2]
        result = self._update(batch)
        # Holding the events list keeps its identity from being reused by another batch.
        PostLikers._cache = (batch.events, batch.state.namespace, result)
        return result

    def _update(self, batch: Batch) -> dict[str, PostActivity]:
        # Late likes need no filtering here: counts are over windows ending at the post's
        # newest like, and the script trims what is older than the retention.
        likes: dict[str, list[str | float]] = {}
        last: dict[str, int] = {}
        for index, event in enumerate(batch.events):
            if event.type == "like":
                post = event.post_id
                entry = likes.get(post)
                if entry is None:
                    likes[post] = [event.actor_id, event.ts]
                else:
                    entry.append(event.actor_id)
                    entry.append(event.ts)
                last[post] = index
        if not likes:
            return {}
        events = batch.events
        payload = [[post, events[last[post]].ts, entry] for post, entry in likes.items()]
        script = load_script(batch.state, "post_likers", PostLikers._scripts)
        args: list[str | int | bytes] = [
            batch.state.namespace,
            self.retention,
            self.cap,
            self.ttl,
            LIKER_WINDOWS[DAY],
            script_json(payload),
        ]
        with batch.state.timed("post_likers"):
            reply = script(keys=[], args=args)
        counts = [int(v) for v in bytes(reply).split(b",")]
        return {
            post: PostActivity(last[post], counts[2 * k], counts[2 * k + 1])
            for k, post in enumerate(likes)
        }


def milestones(before: int, after: int, first: int) -> list[int]:
    """The doublings of ``first`` (``first``, ``2 first``, ``4 first``, ...) that a count
    passed going from ``before`` to ``after``.

    A post teaches a baseline once per doubling of its likers: how often it does no longer
    depends on how often it is judged (once per batch it appears in), so a post being farmed
    cannot outvote the population by being liked in every batch, and a replay in batches of
    any size learns the same values.

    >>> milestones(2, 13, first=3), milestones(13, 23, first=3), milestones(5, 5, first=3)
    ([3, 6, 12], [], [])
    """
    out: list[int] = []
    mark = max(1, first)
    while mark <= after:
        if mark > before:
            out.append(mark)
        mark *= 2
    return out


def account_age(ts: float, created_at: float | None) -> float | None:
    """Age in seconds of an account at event time ``ts``; ``None`` when unknown.

    A creation time after the like (clock skew between producers) counts as age 0.

    >>> account_age(1000.0, 400.0), account_age(1000.0, 1200.0), account_age(1000.0, None)
    (600.0, 0.0, None)
    """
    if created_at is None or math.isnan(created_at):
        return None
    return max(0.0, ts - created_at)


def parse_float(raw: bytes | str | None) -> float | None:
    """A number stored by Lua or a snapshot hash (``None`` for empty or missing).

    >>> parse_float(b"12.5"), parse_float(b""), parse_float(None)
    (12.5, None, None)
    """
    if raw is None or raw == b"" or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        return None


class TierQuantiles:
    """Streaming quantile of a value (e.g. log engagement) per follower tier.

    Parameters
    ----------
    bounds
        Increasing follower counts where a new tier starts, e.g. ``(1000, 5000)`` gives the
        tiers ``< 1000``, ``1000-4999`` and ``>= 5000``.
    q
        The quantile each tier estimates.

    Examples
    --------
    >>> model = TierQuantiles((1000,), q=0.5)
    >>> model.tier(999), model.tier(1000)
    (0, 1)
    >>> for value in (1.0, 2.0, 3.0):
    ...     model.learn(model.tier(50), value)
    >>> model.get(0, min_samples=3), model.get(0, min_samples=4), model.get(1, min_samples=1)
    (2.0, None, None)
    """

    def __init__(self, bounds: Sequence[int], q: float) -> None:
        self.bounds = tuple(bounds)
        self.q = q
        self._estimators = [stats.Quantile(q) for _ in range(len(self.bounds) + 1)]
        self.counts = [0] * (len(self.bounds) + 1)

    def tier(self, followers: float) -> int:
        """Index of the tier ``followers`` falls in."""
        return bisect_right(self.bounds, followers)

    def learn(self, tier: int, value: float) -> None:
        self._estimators[tier].update(value)
        self.counts[tier] += 1

    def get(self, tier: int, min_samples: int) -> float | None:
        """The tier's quantile, or ``None`` before it has seen ``min_samples`` values."""
        if self.counts[tier] < max(1, min_samples):
            return None
        value = self._estimators[tier].get()
        return None if value is None else float(value)

    def compatible(self, bounds: Sequence[int], q: float) -> bool:
        """True when a checkpointed model fits the current settings."""
        return self.bounds == tuple(bounds) and self.q == q


#: Event-time length of an :class:`EpochTierQuantiles` epoch.
BASELINE_EPOCH_SECONDS = 300.0


class EpochTierQuantiles:
    """:class:`TierQuantiles` that change only between epochs of event time, so that the bars
    judged by, and what is learned, do not depend on how the stream is cut into batches.

    A sample is held until its epoch is two behind the stream's (the epoch after it has
    closed too, so the verdicts of every like of its epoch are in, whatever the batches),
    then taught with the rest of its epoch in the order of their keys (River's quantiles
    depend on the order they see values in). A like is judged by the values published when
    its epoch began. Samples of a subject flagged at or before their time are never taught:
    the stream's suspects must not teach the baseline they are judged by.

    Parameters
    ----------
    bounds, q
        As for :class:`TierQuantiles`.
    epoch_seconds
        Length of an epoch (event time).

    Examples
    --------
    >>> model = EpochTierQuantiles((), q=0.5, epoch_seconds=100.0)
    >>> for k, value in enumerate((1.0, 2.0, 3.0)):
    ...     model.learn("post", f"post:{k}", 0, value, ts=10.0 * k)
    >>> model.advance(150.0); model.get(0, 1, ts=150.0)  # epoch 0 is not two behind yet
    >>> model.advance(250.0); model.get(0, 1, ts=250.0), model.get(0, 1, ts=150.0)
    (2.0, None)
    """

    def __init__(self, bounds: Sequence[int], q: float, epoch_seconds: float) -> None:
        self.model = TierQuantiles(bounds, q)
        self.epoch_seconds = epoch_seconds
        # epoch -> sample key -> (subject, tier, value, ts); a key learned twice keeps its last
        self._pending: dict[int, dict[str, tuple[str, int, float, float]]] = {}
        # (first epoch it holds for, per tier (samples taught, quantile)), oldest first
        self._published: list[tuple[int, list[tuple[int, float | None]]]] = [
            (-(2**62), self._values())
        ]
        self._flagged: dict[str, float] = {}  # subject -> when it was first flagged
        self._newest_epoch = -(2**62)

    @property
    def counts(self) -> list[int]:
        """Samples taught per tier."""
        return self.model.counts

    def tier(self, followers: float) -> int:
        return self.model.tier(followers)

    def compatible(self, bounds: Sequence[int], q: float, epoch_seconds: float) -> bool:
        return self.model.compatible(bounds, q) and self.epoch_seconds == epoch_seconds

    def epoch(self, ts: float) -> int:
        """The epoch event time ``ts`` falls in."""
        return math.floor(ts / self.epoch_seconds)

    def learn(self, subject: str, key: str, tier: int, value: float, ts: float) -> None:
        """Hold ``value`` (sample ``key`` of ``subject``, taken at ``ts``) for its epoch."""
        flagged = self._flagged.get(subject)
        if flagged is None or ts < flagged:
            self._pending.setdefault(self.epoch(ts), {})[key] = (subject, tier, value, ts)

    def flag(self, subject: str, ts: float) -> None:
        """``subject`` was flagged at ``ts``: none of its samples from then on is taught."""
        if ts < self._flagged.get(subject, math.inf):
            self._flagged[subject] = ts

    def advance(self, now: float) -> None:
        """Teach and publish every epoch two behind ``now``'s (call before judging)."""
        current = self.epoch(now)
        if current <= self._newest_epoch:
            return
        self._newest_epoch = current
        for epoch in sorted(e for e in self._pending if e <= current - 2):
            samples = self._pending.pop(epoch)
            for key in sorted(samples):
                subject, tier, value, ts = samples[key]
                flagged = self._flagged.get(subject)
                if flagged is None or ts < flagged:
                    self.model.learn(tier, value)
            # (A sample of an epoch already taught, from a like far behind the stream, is
            # taught now: what earlier epochs were judged by does not change.)
            self._published.append((max(epoch + 2, self._published[-1][0]), self._values()))
        # A batch spans a few epochs at most: older publications are never asked for again.
        del self._published[: max(0, len(self._published) - 8)]
        horizon = now - 2 * 86400.0  # reports (and their flags) live about a day
        if len(self._flagged) > 1024:
            self._flagged = {s: t for s, t in self._flagged.items() if t >= horizon}

    def get(self, tier: int, min_samples: int, ts: float) -> float | None:
        """The tier's quantile as published for ``ts``'s epoch (``None`` before
        ``min_samples``)."""
        epoch = self.epoch(ts)
        values = self._published[0][1]
        for start, published in reversed(self._published):
            if start <= epoch:
                values = published
                break
        count, value = values[tier]
        return value if count >= max(1, min_samples) else None

    def _values(self) -> list[tuple[int, float | None]]:
        model = self.model
        return [(model.counts[t], model.get(t, 1)) for t in range(len(model.counts))]


def load_script(state: RedisState, name: str, cache: dict[int, Script]) -> Script:
    """Register the packaged ``{name}.lua`` on ``state``'s client once (cached per client)."""
    script = cache.get(id(state.client))
    if script is None:
        text = resources.files("detectors").joinpath(f"{name}.lua").read_text("utf-8")
        script = cache[id(state.client)] = state.client.register_script(text)
    return script


#: Cool-down of report findings: none. Reports pace themselves (a follow-up every
#: ``report_every`` while suspects keep coming, at once when an answer was cut at
#: ``max_accounts``) and mark what they name as reported, so the alert gate must not drop one:
#: it would lose names.
REPORT_COOLDOWN = 0.0


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """Ask for a subject's suspects liked in ``(since, until]``.

    ``initial`` requests start a report (a follow-up is scheduled ``report_every`` later);
    follow-ups (``since=None``: from where the last report ended) schedule the next one only
    when they found new suspects.
    """

    subject: str
    since: float | None
    until: float
    initial: bool
    author: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    """The suspects a request found in ``(since, until]`` (after any written late, liked
    before ``since`` but not named yet), and the report's running totals.

    ``until`` is the request's unless the answer was cut at ``max_accounts``: then it is the
    last named suspect's like, and the rest is due at once.
    """

    request: ReportRequest
    suspects: tuple[str, ...]
    since: float
    until: float
    author: str
    first_alert: float | None
    reported_total: int

    @property
    def ended(self) -> bool:
        """A follow-up that found nobody new: the report ended at its request's ``until``."""
        return not self.request.initial and not self.suspects

    @property
    def follow_up_id(self) -> str:
        """The trigger id of a follow-up alert: the subject and the stretch it covers, which
        the event-time schedule fixes whatever batches the stream came in."""
        return f"follow-up:{self.request.subject}:{self.since!r}-{self.until!r}"


class SuspectReports:
    """Reads and schedules suspect reports for one detector (key prefix ``prefix``).

    Follow-ups fall due on a grid of event times (``report_every`` after the report's last
    stretch) and each covers the stretch up to its due time, so what reports name, and when,
    does not depend on how the stream was cut into batches. :meth:`run` answers requests and
    the follow-ups that fall due by the batch's newest event, in due order per subject.

    Parameters
    ----------
    prefix
        The detector's key prefix (``na``, ``fi``).
    report_every
        Seconds (event time) between follow-ups while a subject keeps getting suspects.
    ttl
        Redis TTL of the report keys.
    max_accounts
        Most suspects one report names.
    """

    def __init__(self, prefix: str, report_every: float, ttl: int, max_accounts: int) -> None:
        self.prefix = prefix
        self.report_every = report_every
        self.ttl = ttl
        self.max_accounts = max_accounts
        self._scripts: dict[int, Script] = {}
        #: Event time of the earliest follow-up queued (``-inf``: not known yet, look).
        self.next_due = -math.inf

    def run(self, state: RedisState, requests: Sequence[ReportRequest], now: float) -> list[Report]:
        """Answer ``requests``, then every follow-up due by ``now`` (event time), in rounds
        until none is left: a follow-up that finds suspects schedules the next, which may be
        due by ``now`` too. One round trip per round; none when nothing is asked or due."""
        reports: list[Report] = []
        while requests or now >= self.next_due:
            answered, due = self._call(state, requests, now)
            reports += answered
            requests = [ReportRequest(subject, None, at, False) for subject, at in due]
        return reports

    def follow_ups(self, state: RedisState, now: float) -> tuple[list[Report], dict[str, float]]:
        """The follow-ups due by ``now``, and where each report that ended among them ended.

        A detector runs them after writing the batch's suspects (a follow-up names those liked
        up to its due time) and before judging its posts: a report that ended within the
        batch leaves the post's later likes free to start the next one.
        """
        reports = self.run(state, [], now)
        return reports, {r.request.subject: r.request.until for r in reports if r.ended}

    def fetch(self, state: RedisState, requests: Sequence[ReportRequest]) -> list[Report]:
        """One round trip: the suspects of every request, with reports and schedules updated
        (no follow-up is claimed)."""
        if not requests:
            return []
        return self._call(state, requests, -math.inf)[0]

    def _call(
        self, state: RedisState, requests: Sequence[ReportRequest], claim_until: float
    ) -> tuple[list[Report], list[tuple[str, float]]]:
        args: list[str | int | float] = [
            state.namespace,
            self.prefix,
            self.ttl,
            self.max_accounts,
            repr(float(self.report_every)),
            repr(float(claim_until)),
        ]
        for request in requests:
            args += [
                request.subject,
                "" if request.since is None else repr(float(request.since)),
                repr(float(request.until)),
                1 if request.initial else 0,
                request.author,
            ]
        script = load_script(state, "suspects", self._scripts)
        with state.timed(f"{self.prefix}_suspects"):
            flat: list[Any] = script(keys=[], args=args)
        reports: list[Report] = []
        pos = 0
        for request in requests:
            author, first, total, since, until, count = flat[pos : pos + 6]
            count = int(count)
            members = tuple(_text(m) for m in flat[pos + 6 : pos + 6 + count])
            pos += 6 + count
            start, end = parse_float(since), parse_float(until)
            reports.append(
                Report(
                    request=request,
                    suspects=members,
                    since=request.until if start is None else start,
                    until=request.until if end is None else end,
                    author=_text(author),
                    first_alert=parse_float(first),
                    reported_total=int(total),
                )
            )
        claimed = int(flat[pos])
        pairs = flat[pos + 1 : pos + 1 + 2 * claimed]
        due = [(_text(pairs[j]), float(pairs[j + 1])) for j in range(0, len(pairs), 2)]
        earliest = parse_float(flat[pos + 1 + 2 * claimed])
        self.next_due = math.inf if earliest is None else earliest
        return reports, due


def _text(raw: bytes | str | int) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
