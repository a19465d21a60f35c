"""New-account spikes: fresh accounts liking at a high rate, and targets liked mostly by them.

*Actor side.* An account younger than ``max_age_seconds`` at the like (age from the event's
``actor_created_at``, else from the stored account snapshots, from the first one's time on;
unknown age is never "new") is
flagged when its likes in some window reach ``max(min_likes, quantile_factor × population
quantile)``, a bar about half the burst bar: an account minutes old has no history that could
explain a sustained spree.

*Target side.* Every like by a new account is added to the post's set of new likers (Redis,
last day). A post is flagged when at least ``min_new_likers`` of its distinct likers of the
last hour are new and they make at least ``min_new_share`` of them. The alert (subject: the
post) names the new likers, and the author as beneficiary when new accounts are at least
``author_min_new_share`` of the post's likers over the day (a farm liking a popular post in
passing, as camouflage, does not implicate its author); while new likers keep coming,
follow-ups name the later ones (:class:`~detectors.accounts.SuspectReports`).

Follow-ups fall due on a fixed grid of event times and a post is judged on every like not
covered by its running report, so the alerts, ids included, do not depend on where the stream's
batches end (replay with any ``--batch-size``, one worker or several).

Cost per batch: one pass over the events in Python, in which likes by accounts known to be
old only feed the population quantile, and the shared per-post liker sets
(:class:`~detectors.accounts.PostLikers`, one Lua call shared with fan_imbalance). Only when
the batch has likes by new accounts (or by accounts of unknown age): one Lua call (ages from
snapshots, new-liker sets, their counts); when a post is flagged or a follow-up falls due, one
more for the reports (and, when a report ends within the batch and its post has later likes
by new accounts, one more count of those).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from redis.commands.core import Script

from detectors.accounts import (
    DAY,
    LIKER_WINDOWS,
    RECENT,
    REPORT_COOLDOWN,
    PostLikers,
    Report,
    ReportRequest,
    SuspectReports,
    account_age,
    load_script,
    parse_float,
)
from detectors.base import (
    ACTOR_LIKES,
    Batch,
    Detector,
    Finding,
    actor_finding,
    first_at_or_after,
    sampled,
)
from detectors.config import NewAccountSpikeConfig, WindowsConfig
from detectors.models import PopulationQuantiles
from detectors.state import script_json
from detectors.windows import ADDED, LATE, WindowCounts

PREFIX = "na"
POST = "p:"


@dataclass(frozen=True, slots=True)
class Target:
    """What the batch script counted for a post liked by new accounts.

    ``index`` is the like the counts are taken at (the first that met both bars, else the
    post's last candidate like); ``new_likers``/``likers`` are over the last hour, the ``_day``
    counts over the day (0 unless both bars were met).
    """

    index: int
    new_likers: int
    likers: int
    new_likers_day: int
    likers_day: int
    reported_until: float | None
    scheduled: bool


@dataclass(frozen=True, slots=True)
class TargetVerdict:
    """Whether a post's or author's recent likers are mostly new accounts."""

    flagged: bool
    score: float
    new_likers: int
    likers: int
    share: float


def judge_target(new_likers: int, likers: int, min_new: int, min_share: float) -> TargetVerdict:
    """Judge a target from its new and total distinct likers over the same window.

    The score is the geometric mean of how far each bar is exceeded, so 1.0 is the threshold.
    ``likers`` is never taken below ``new_likers`` (the two counts come from different keys).

    >>> judge_target(12, 15, min_new=5, min_share=0.6).flagged
    True
    >>> judge_target(12, 100, min_new=5, min_share=0.6).flagged  # a popular post
    False
    >>> judge_target(3, 3, min_new=5, min_share=0.6).flagged  # too few to say
    False
    """
    likers = max(likers, new_likers, 1)
    share = new_likers / likers
    flagged = new_likers >= min_new and share >= min_share
    score = math.sqrt((new_likers / min_new) * (share / min_share))
    return TargetVerdict(flagged, score, new_likers, likers, share)


def actor_thresholds(
    floors: Sequence[int], quantiles: Sequence[float], factor: float
) -> list[float]:
    """Per window, the likes that make a new account's spree suspicious.

    >>> actor_thresholds((40, 25), (10.0, 30.0), factor=1.5)
    [40.0, 45.0]
    """
    return [max(float(f), factor * q) for f, q in zip(floors, quantiles, strict=True)]


class NewAccountSpikeDetector(Detector):
    """Flags fresh accounts liking at a high rate, and posts liked mostly by them.

    Parameters
    ----------
    config
        The ``[new_account_spike]`` settings.
    windows
        The ``[windows]`` settings: the ``actor_likes`` lengths, and the bounds of the
        per-post liker sets (:class:`~detectors.accounts.PostLikers`) and new-liker sets.

    Evidence: actor side ``account_age_seconds``, ``window_seconds``, ``likes_in_window``,
    ``threshold``, ``likes_by_window``; target side ``new_likers``, ``likers``,
    ``new_share``, ``window_seconds``, ``author_id``, ``new_likers_named``, ``follow_up`` and
    ``reported_so_far``.
    """

    name: ClassVar[str] = "new_account_spike"
    cross_account: ClassVar[bool] = True

    def __init__(self, config: NewAccountSpikeConfig, windows: WindowsConfig) -> None:
        lengths = windows.lengths_seconds
        if len(config.min_likes) != len(lengths):
            raise ValueError("new_account_spike.min_likes needs one value per window length")
        self.config = config
        self.lengths = lengths
        self.window = LIKER_WINDOWS[RECENT]
        self.model = PopulationQuantiles(len(lengths), config.quantile)
        if config.learn_window_seconds not in lengths:
            raise ValueError("new_account_spike.learn_window_seconds must be a window length")
        self._learn_index = lengths.index(config.learn_window_seconds)
        self.reports = SuspectReports(
            PREFIX, config.report_every_seconds, config.state_ttl_seconds, config.max_accounts
        )
        self.post_likers = PostLikers(windows)
        # New likers kept per post: as many as a window key holds (alerts name max_accounts).
        self.max_suspects = max(windows.max_members, config.max_accounts)
        self._scripts: dict[int, Script] = {}

    def prepare(self, batch: Batch) -> None:
        # Every like must reach the per-post liker sets (shared with fan_imbalance: the work is
        # done once), or the share of new likers would be overstated.
        self.post_likers.activity(batch)

    def detect(self, batch: Batch) -> list[Finding]:
        if not batch.events:
            return []
        cfg = self.config
        max_age = cfg.max_age_seconds
        actor_w = batch.windows[ACTOR_LIKES]
        learn, learn_at = cfg.learn_fraction, self._learn_index
        teach = batch.learn
        # actor -> created_at from an event (None: look it up), in first-seen order
        created: dict[str, float | None] = {}
        candidates: list[int] = []  # likes by new accounts, or by accounts of unknown age
        # A candidate is judged against the population as of its like, not as of the batch's
        # end: the bars do not depend on where the batch ends.
        bars: dict[int, list[float]] = {}
        current: list[float] | None = None
        now = batch.events[0].ts
        for index, event in enumerate(batch.events):
            if event.ts > now:
                now = event.ts
            window = actor_w[index]
            if window is None or window.status == LATE:
                continue  # unlikes have no actor_likes counts
            born = event.actor_created_at
            if born is not None and event.ts - born >= max_age:
                if teach and window.status == ADDED:
                    # About one sample per account per learn window (see defaults.toml).
                    share = learn / max(1, window.counts[learn_at])
                    if sampled(event.event_id, share):
                        self.model.learn_one(window.counts)
                        current = None
                continue
            if born is not None or event.actor_id not in created:
                created[event.actor_id] = born
            candidates.append(index)
            if current is None:
                current = actor_thresholds(
                    cfg.min_likes, self.model.quantiles(), cfg.quantile_factor
                )
            bars[index] = current
        findings: list[Finding] = []
        targets: dict[str, Target] = {}
        if candidates:
            born_at, targets = self._exchange(batch, created, candidates)
            findings += self._actor_side(batch, candidates, born_at, bars)
        reports, ended = self.reports.follow_ups(batch.state, now)
        # A post whose report ended within the batch was not judged (it was under report):
        # its likes after the end are counted again, free to start the next report.
        events = batch.events
        again = [
            i
            for i in candidates
            if (end := ended.get(POST + events[i].post_id)) is not None
            and targets[events[i].post_id].scheduled
            and events[i].ts > end
        ]
        if again:
            actors = {events[i].actor_id for i in again}
            of_again = {a: b for a, b in created.items() if a in actors}
            targets |= self._exchange(batch, of_again, again)[1]

        requests: list[ReportRequest] = []
        context: dict[str, tuple[Target, TargetVerdict]] = {}
        for post, target in targets.items():
            verdict = judge_target(
                target.new_likers, target.likers, cfg.min_new_likers, cfg.min_new_share
            )
            if target.scheduled or not verdict.flagged:
                continue
            event = batch.events[target.index]
            since = event.ts - self.window
            if target.reported_until is not None:
                since = max(since, target.reported_until)
            subject = POST + post
            # The author profits only from a post whose engagement the new accounts make: a
            # popular post a farm likes in passing (camouflage) does not implicate its author.
            implicated = target.new_likers_day >= cfg.author_min_new_share * target.likers_day
            author = event.author_id if implicated else ""
            requests.append(ReportRequest(subject, since, event.ts, True, author))
            context[subject] = (target, verdict)
        if requests:
            reports += self.reports.run(batch.state, requests, now)
        for report in reports:
            initial = context.get(report.request.subject) if report.request.initial else None
            finding = self._target_finding(batch, report, initial)
            if finding is not None:
                findings.append(finding)
        return findings

    # ------------------------------------------------------------------------ redis

    def _exchange(
        self,
        batch: Batch,
        created: dict[str, float | None],
        candidates: list[int],
    ) -> tuple[dict[str, tuple[float | None, float]], dict[str, Target]]:
        """One round trip (see ``new_accounts.lua``).

        ``created`` holds the candidates' actors (and no others). Returns the creation times
        found for them (in order) with since when each is known, and what the script counted
        for each post liked by a candidate.
        """
        cfg = self.config
        events = batch.events
        slot = {actor: position + 1 for position, actor in enumerate(created)}
        by_post: dict[str, list[int]] = {}
        for index in candidates:
            by_post.setdefault(events[index].post_id, []).append(index)
        payload = {
            "actors": [[actor, "" if b is None else repr(b)] for actor, b in created.items()],
            "likes": [
                [slot[events[i].actor_id], events[i].post_id, events[i].ts] for i in candidates
            ],
            "posts": [[post, [events[i].ts for i in indices]] for post, indices in by_post.items()],
        }
        args: list[str | int | float | bytes] = [
            batch.state.namespace,
            repr(float(cfg.max_age_seconds)),
            self.window,
            cfg.state_ttl_seconds,
            self.max_suspects,
            cfg.min_new_likers,
            repr(float(cfg.min_new_share)),
            LIKER_WINDOWS[DAY],
            script_json(payload),
        ]
        script = load_script(batch.state, "new_accounts", self._scripts)
        with batch.state.timed("new_accounts"):
            reply = json.loads(script(keys=[], args=args))
        born_at = {
            actor: (parse_float(value), parse_float(known) or -math.inf)
            for actor, value, known in zip(
                created, reply["created"] or [], reply["known"] or [], strict=True
            )
        }
        targets = {
            post: Target(
                index=by_post[post][int(at) - 1],
                new_likers=int(new),
                likers=int(likers),
                new_likers_day=int(new_day),
                likers_day=int(likers_day),
                reported_until=parse_float(until),
                scheduled=bool(due),
            )
            for post, (new, likers, at, new_day, likers_day, until, due) in zip(
                by_post, reply["posts"] or [], strict=True
            )
        }
        return born_at, targets

    # ----------------------------------------------------------------------- verdicts

    def _actor_side(
        self,
        batch: Batch,
        candidates: list[int],
        born_at: dict[str, tuple[float | None, float]],
        bars: dict[int, list[float]],
    ) -> list[Finding]:
        cfg = self.config
        actor_w = batch.windows[ACTOR_LIKES]
        findings: list[Finding] = []
        for index in candidates:
            event = batch.events[index]
            born = event.actor_created_at
            if born is None:
                # From a snapshot only from the first one's time on (see new_accounts.lua).
                looked_up, known = born_at.get(event.actor_id, (None, -math.inf))
                born = looked_up if event.ts >= known else None
            age = account_age(event.ts, born)
            if age is None or age >= cfg.max_age_seconds:
                continue
            window = actor_w[index]
            assert window is not None
            thresholds = bars[index]
            best, best_ratio = _best_ratio(window, thresholds)
            if best_ratio < 1.0:
                continue
            length = self.lengths[best]
            findings.append(
                actor_finding(
                    self.name,
                    event,
                    best_ratio,
                    length,
                    {
                        "side": "actor",
                        "account_age_seconds": round(age, 1),
                        "window_seconds": length,
                        "likes_in_window": window.counts[best],
                        "threshold": round(thresholds[best], 3),
                        "likes_by_window": {
                            str(n): c for n, c in zip(self.lengths, window.counts, strict=True)
                        },
                    },
                )
            )
        return findings

    def _target_finding(
        self,
        batch: Batch,
        report: Report,
        context: tuple[Target, TargetVerdict] | None,
    ) -> Finding | None:
        subject = report.request.subject
        post = subject[len(POST) :]
        if not report.suspects:
            return None
        accounts = list(report.suspects)
        if report.author and report.author not in accounts:
            accounts.append(report.author)
        evidence: dict[str, Any] = {
            "side": "target",
            "author_implicated": bool(report.author),
            "window_seconds": self.window,
            "new_account_max_age_seconds": self.config.max_age_seconds,
            "new_likers_named": len(report.suspects),
            "reported_so_far": report.reported_total,
            "follow_up": context is None,
        }
        if context is not None:
            target, verdict = context
            event = batch.events[target.index]
            event_time, trigger, score = event.ts, event.event_id, verdict.score
            outbox = None
            evidence.update(
                author_id=event.author_id,
                new_likers=verdict.new_likers,
                likers=verdict.likers,
                new_share=round(verdict.share, 3),
                min_new_likers=self.config.min_new_likers,
                min_new_share=self.config.min_new_share,
                new_likers_day=target.new_likers_day,
                likers_day=target.likers_day,
                author_min_new_share=self.config.author_min_new_share,
            )
        else:
            event_time, trigger, score = report.request.until, report.follow_up_id, 1.0
            outbox = first_at_or_after(batch.events, event_time)
            if report.author:
                evidence["author_id"] = report.author
        return Finding(
            detector=self.name,
            subject_kind="post",
            subject_id=post,
            accounts=tuple(accounts),
            score=score,
            event_time=event_time,
            window_start=report.since,
            window_end=report.until,
            trigger_event_id=trigger,
            evidence=evidence,
            cooldown_seconds=REPORT_COOLDOWN,
            outbox_event_id=outbox,
        )

    def model_state(self) -> Any:
        return self.model

    def load_model_state(self, state: Any) -> None:
        if isinstance(state, PopulationQuantiles) and len(state.quantiles()) == len(self.lengths):
            self.model = state


def _best_ratio(window: WindowCounts, thresholds: Sequence[float]) -> tuple[int, float]:
    best, best_ratio = 0, 0.0
    for r, count in enumerate(window.counts):
        ratio = count / thresholds[r]
        if ratio > best_ratio:
            best, best_ratio = r, ratio
    return best, best_ratio
