"""New-account spikes: fresh accounts liking at a high rate, and targets liked mostly by them.

*Actor side.* An account younger than ``max_age_seconds`` at the like (age from the event's
``actor_created_at``, else from the stored account snapshot; unknown age is never "new") is
flagged when its likes in some window reach ``max(min_likes, quantile_factor × population
quantile)``, a bar about half the burst bar: an account minutes old has no history that could
explain a sustained spree.

*Target side.* Every like by a new account is added to the post's and the author's set of new
likers (Redis, last hour). A post is flagged when at least ``min_new_likers`` of its distinct
likers of the last hour are new and they make at least ``min_new_share`` of them; an author
likewise over all their posts. The alert names the new likers and the author (the
beneficiary); while new likers keep coming, follow-ups name the later ones
(:class:`~detectors.accounts.SuspectReports`).

Cost per batch: one Lua call (ages of accounts whose events carry no ``actor_created_at``,
new-liker sets, counts for the posts and authors new accounts liked, due follow-ups) and, only
when something is flagged, one more for the suspects. Python work is one pass over the
events; likes by accounts known to be old cost a dictionary update.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from redis.commands.core import Script

from detectors.accounts import (
    LIKER_WINDOWS,
    LIKERS_BY_AUTHOR,
    LIKERS_BY_POST,
    RECENT,
    ReportRequest,
    SuspectReports,
    account_age,
    load_script,
    parse_float,
)
from detectors.base import ACTOR_LIKES, Batch, Detector, Finding, sampled
from detectors.config import NewAccountSpikeConfig
from detectors.models import PopulationQuantiles
from detectors.windows import LATE, WindowCounts, WindowSpec

PREFIX = "na"
POST, AUTHOR = "p:", "a:"


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
    """Flags fresh accounts liking at a high rate, and posts/authors liked mostly by them.

    Parameters
    ----------
    config
        The ``[new_account_spike]`` settings.
    lengths
        Window lengths (seconds) of the ``actor_likes`` counts.

    Evidence: actor side ``account_age_seconds``, ``window_seconds``, ``likes_in_window``,
    ``threshold``, ``likes_by_window``; target side ``new_likers``, ``likers``,
    ``new_share``, ``window_seconds``, ``follow_up`` and ``reported_so_far``.
    """

    name: ClassVar[str] = "new_account_spike"

    def __init__(self, config: NewAccountSpikeConfig, lengths: tuple[int, ...]) -> None:
        if len(config.min_likes) != len(lengths):
            raise ValueError("new_account_spike.min_likes needs one value per window length")
        self.config = config
        self.lengths = lengths
        self.window = LIKER_WINDOWS[RECENT]
        self.model = PopulationQuantiles(len(lengths), config.quantile)
        self.reports = SuspectReports(
            PREFIX, config.report_every_seconds, config.state_ttl_seconds, config.max_accounts
        )
        self._scripts: dict[int, Script] = {}

    def window_specs(self) -> Sequence[WindowSpec]:
        return (LIKERS_BY_POST, LIKERS_BY_AUTHOR)

    def detect(self, batch: Batch) -> list[Finding]:
        if not batch.events:
            return []
        cfg = self.config
        max_age = cfg.max_age_seconds
        actor_w = batch.windows[ACTOR_LIKES]
        # actor -> created_at from an event (None: look it up), in first-seen order
        created: dict[str, float | None] = {}
        candidates: list[int] = []  # likes by new accounts, or accounts of unknown age
        last_of_post: dict[str, int] = {}
        last_of_author: dict[str, int] = {}
        now = batch.events[0].ts
        for index, event in enumerate(batch.events):
            if event.ts > now:
                now = event.ts
            window = actor_w[index]
            if event.type != "like" or window is None or window.status == LATE:
                continue
            last_of_post[event.post_id] = index
            last_of_author[event.author_id] = index
            born = event.actor_created_at
            if born is not None and event.ts - born >= max_age:
                if batch.is_fresh(index) and sampled(event.event_id, cfg.learn_fraction):
                    self.model.learn_one(window.counts)
                continue
            if born is not None or event.actor_id not in created:
                created[event.actor_id] = born if born is not None else created.get(event.actor_id)
            candidates.append(index)
        answer = self._exchange(batch, created, candidates, last_of_post, last_of_author, now)
        born_at, post_counts, author_counts, due = answer

        findings = self._actor_side(batch, candidates, born_at)
        requests: list[ReportRequest] = []
        context: dict[str, tuple[int, Any]] = {}
        for kind, counts, last, family, min_new in (
            (POST, post_counts, last_of_post, LIKERS_BY_POST.name, cfg.min_new_likers),
            (
                AUTHOR,
                author_counts,
                last_of_author,
                LIKERS_BY_AUTHOR.name,
                cfg.author_min_new_likers,
            ),
        ):
            for key, (new_likers, reported_until, scheduled) in counts.items():
                index = last[key]
                likers_window = batch.windows[family][index]
                likers = likers_window.counts[RECENT] if likers_window is not None else 0
                verdict = judge_target(new_likers, likers, min_new, cfg.min_new_share)
                if not verdict.flagged or scheduled:
                    continue
                event = batch.events[index]
                since = event.ts - self.window
                if reported_until is not None:
                    since = max(since, reported_until)
                subject = kind + key
                author = event.author_id if kind == POST else ""
                requests.append(ReportRequest(subject, since, event.ts, True, author))
                context[subject] = (index, verdict)
        for subject in due:
            if subject not in context:
                requests.append(ReportRequest(subject, None, now, False))
        for report in self.reports.fetch(batch.state, requests):
            finding = self._target_finding(batch, report, context.get(report.request.subject), now)
            if finding is not None:
                findings.append(finding)
        return findings

    # ------------------------------------------------------------------------ redis

    def _exchange(
        self,
        batch: Batch,
        created: dict[str, float | None],
        candidates: list[int],
        last_of_post: dict[str, int],
        last_of_author: dict[str, int],
        now: float,
    ) -> tuple[
        dict[str, float | None],
        dict[str, tuple[int, float | None, bool]],
        dict[str, tuple[int, float | None, bool]],
        list[str],
    ]:
        """One round trip: ages, new-liker sets updated and counted, due follow-ups."""
        cfg = self.config
        actors = list(created)
        slot = {actor: position + 1 for position, actor in enumerate(actors)}
        args: list[str | int | float] = [
            batch.state.namespace,
            repr(float(cfg.max_age_seconds)),
            self.window,
            cfg.state_ttl_seconds,
            cfg.max_accounts,
            repr(now),
            len(actors),
        ]
        for actor in actors:
            born = created[actor]
            args += [actor, "" if born is None else repr(born)]
        args.append(len(candidates))
        posts: dict[str, None] = {}
        authors: dict[str, None] = {}
        for index in candidates:
            event = batch.events[index]
            args += [slot[event.actor_id], event.post_id, event.author_id, repr(event.ts)]
            posts[event.post_id] = None
            authors[event.author_id] = None
        for keys, last in ((posts, last_of_post), (authors, last_of_author)):
            args.append(len(keys))
            for key in keys:
                args += [key, repr(batch.events[last[key]].ts)]
        script = load_script(batch.state, "new_accounts", self._scripts)
        with batch.state.timed("new_accounts"):
            flat: list[Any] = script(keys=[], args=args)
        born_at = {actor: parse_float(flat[position]) for position, actor in enumerate(actors)}
        pos = len(actors)
        counted: list[dict[str, tuple[int, float | None, bool]]] = []
        for keys in (posts, authors):
            found: dict[str, tuple[int, float | None, bool]] = {}
            for key in keys:
                count, until, scheduled = flat[pos : pos + 3]
                found[key] = (int(count), parse_float(until), bool(int(scheduled)))
                pos += 3
            counted.append(found)
        n_due = int(flat[pos])
        due = [_text(s) for s in flat[pos + 1 : pos + 1 + n_due]]
        return born_at, counted[0], counted[1], due

    # ----------------------------------------------------------------------- verdicts

    def _actor_side(
        self, batch: Batch, candidates: list[int], born_at: dict[str, float | None]
    ) -> list[Finding]:
        cfg = self.config
        thresholds = actor_thresholds(cfg.min_likes, self.model.quantiles(), cfg.quantile_factor)
        actor_w = batch.windows[ACTOR_LIKES]
        findings: list[Finding] = []
        for index in candidates:
            event = batch.events[index]
            born = event.actor_created_at
            if born is None:
                born = born_at.get(event.actor_id)
            age = account_age(event.ts, born)
            if age is None or age >= cfg.max_age_seconds:
                continue
            window = actor_w[index]
            assert window is not None
            best, best_ratio = _best_ratio(window, thresholds)
            if best_ratio < 1.0:
                continue
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
        report: Any,
        context: tuple[int, TargetVerdict] | None,
        now: float,
    ) -> Finding | None:
        subject = report.request.subject
        kind, subject_id = subject[:2], subject[2:]
        author = subject_id if kind == AUTHOR else report.author
        accounts = list(report.suspects)
        if not accounts:
            return None
        if author and author not in accounts:
            accounts.append(author)
        evidence: dict[str, Any] = {
            "side": "target",
            "window_seconds": self.window,
            "new_account_max_age_seconds": self.config.max_age_seconds,
            "new_likers_named": len(report.suspects),
            "reported_so_far": report.reported_total,
            "follow_up": context is None,
        }
        if context is not None:
            index, verdict = context
            event = batch.events[index]
            event_time, trigger = event.ts, event.event_id
            evidence.update(
                new_likers=verdict.new_likers,
                likers=verdict.likers,
                new_share=round(verdict.share, 3),
                min_new_likers=(
                    self.config.min_new_likers
                    if kind == POST
                    else self.config.author_min_new_likers
                ),
                min_new_share=self.config.min_new_share,
            )
            score = verdict.score
        else:
            event_time, trigger = now, f"follow-up:{subject}:{now!r}"
            score = 1.0
        if kind == POST:
            evidence["author_id"] = author
        return Finding(
            detector=self.name,
            subject_kind="post" if kind == POST else "account",
            subject_id=subject_id,
            accounts=tuple(accounts),
            score=score,
            event_time=event_time,
            window_start=report.since,
            window_end=report.request.until,
            trigger_event_id=trigger,
            evidence=evidence,
            cooldown_seconds=self.config.report_every_seconds,
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


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
