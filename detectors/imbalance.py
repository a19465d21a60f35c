"""Fan-to-interaction imbalance: engagement out of line with the author's audience.

Two findings, both judged within follower tiers (``tier_bounds``) against River baselines
learned from the stream (quantiles of log engagement per tier, checkpointed) and fixed bars
that keep small numbers quiet:

*Bought likes* (subject: the post). A post's distinct likers in the day over its author's
followers, above ``max(min_audience_ratio, audience_factor × tier quantile)`` while the views do
not support the likes; or a post surging by ``min_post_likes`` likes in the hour whose newest
snapshot shows likes without views (likes per view above ``max_likes_per_view``) or views
without completions (completion under ``min_completion``). The views are compared with the
likes counted *up to the snapshot's time*, so a snapshot that lags the likes does not make a
viral post look bought. The alert names the post's quick likers (less dwell than
``quick_dwell_ms``) and the author; follow-ups name the likers delivered since.

*Bought followers* (subject: the author). An author with at least ``min_followers`` whose best
post of about the last day got under ``min(max_engagement, engagement_factor × tier quantile)``
of their followers in distinct likers. Judged on likes touching the author's posts, once the
namespace has watched likes for ``min_observed_seconds``.

Follow-ups fall due on a fixed grid of event times, the baselines change only between epochs
of event time (:class:`~detectors.accounts.EpochTierQuantiles`: a post teaches once per
doubling of its likers, an author once per epoch, neither once flagged), and followers and
views are read as of the judged like (``snapshots.lua``), so the alerts do not depend on where
the stream's batches end, nor on how far ahead of the judging the snapshots were stored.

Cost per batch: one Lua call (followers and best post of the batch's authors, snapshots of
the posts with enough likes, quick-like sets) and, only when a post is flagged or a follow-up
falls due, one more for the reports. Python work is one pass over the events, then one step
per distinct post and author of the batch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from redis.commands.core import Script

from detectors.accounts import (
    BASELINE_EPOCH_SECONDS,
    LIKER_WINDOWS,
    RECENT,
    REPORT_COOLDOWN,
    EpochTierQuantiles,
    PostActivity,
    PostLikers,
    Report,
    ReportRequest,
    SuspectReports,
    load_script,
    milestones,
    parse_float,
)
from detectors.base import Batch, Detector, Finding, first_at_or_after, sampled
from detectors.config import FanImbalanceConfig, WindowsConfig
from detectors.state import script_json

PREFIX = "fi"
POST = "p:"


@dataclass(frozen=True, slots=True)
class Views:
    """A post's newest snapshot counters (taken at ``ts``), with the likes counted up to then."""

    views: int
    completions: int | None
    likes: int
    ts: float = -math.inf

    @property
    def completion(self) -> float | None:
        if self.completions is None or self.views <= 0:
            return None
        return self.completions / self.views


@dataclass(frozen=True, slots=True)
class Author:
    """What the batch script found about an author of the batch.

    ``best`` (distinct likers of their best post in about a day) is only kept for authors with
    at least ``min_followers``; ``index`` is the author's last like in the batch, and
    ``followers`` are as of that like (never from a snapshot taken after it).
    """

    followers: float | None
    best: float | None
    best_post: str
    index: int


@dataclass(frozen=True, slots=True)
class PostVerdict:
    """Bought-likes judgement of one post."""

    flagged: bool
    score: float
    reasons: tuple[str, ...]
    audience_ratio: float | None
    views_support: str  # "supported", "unsupported" or "unknown"
    evidence: dict[str, Any] = field(default_factory=dict)


def views_support(
    views: Views | None, cfg: FanImbalanceConfig, likes_now: int | None = None
) -> tuple[str, float]:
    """Do the views back the likes? Returns the state and how far a bar is missed (>= 1).

    The snapshot is judged with the likes counted up to its own time. It vouches only for
    those: when the post now has more likes than its known views could back
    (``likes_now > max_likes_per_view × views``), a snapshot that looked fine is stale and
    the state is ``unknown`` (a snapshot taken before a farm delivered does not clear it).

    >>> cfg = FanImbalanceConfig()
    >>> views_support(Views(views=2000, completions=600, likes=100), cfg)[0]
    'supported'
    >>> views_support(Views(views=2000, completions=600, likes=100), cfg, likes_now=900)[0]
    'unknown'
    >>> views_support(Views(views=600, completions=20, likes=550), cfg)[0]
    'unsupported'
    >>> views_support(None, cfg)[0], views_support(Views(0, 0, 0), cfg)[0]
    ('unknown', 'unknown')
    """
    if views is None:
        return "unknown", 0.0
    excess = 0.0
    if views.likes >= cfg.min_snapshot_likes:
        per_view = views.likes / max(views.views, 1)
        excess = max(excess, per_view / cfg.max_likes_per_view)
    if views.views >= cfg.min_views:
        completion = views.completion
        if completion is not None:
            excess = max(excess, cfg.min_completion / max(completion, 1e-3))
    elif excess <= 1.0:
        return "unknown", excess
    if excess > 1.0:
        return "unsupported", excess
    if likes_now is not None and likes_now > cfg.max_likes_per_view * views.views:
        return "unknown", excess
    return "supported", excess


def judge_post(
    likes_recent: int,
    likes_day: int,
    followers: float | None,
    audience_threshold: float,
    views: Views | None,
    cfg: FanImbalanceConfig,
) -> PostVerdict:
    """Bought likes? ``score`` is normalised so that 1.0 is the threshold.

    >>> cfg = FanImbalanceConfig()
    >>> judge_post(400, 500, 300, 0.15, None, cfg).reasons  # far above the audience
    ('audience',)
    >>> judge_post(400, 500, 300, 0.15, Views(9000, 3000, 480), cfg).flagged  # viral: views back it
    False
    >>> judge_post(60, 60, 20000, 0.15, Views(700, 20, 60), cfg).reasons  # no completions
    ('views',)
    >>> judge_post(30, 30, 10, 0.15, None, cfg).flagged  # too few likes to say anything
    False
    """
    support, excess = views_support(views, cfg, likes_now=likes_day)
    ratio = likes_day / followers if followers else None
    reasons: list[str] = []
    score = 0.0
    if (
        ratio is not None
        and likes_day >= cfg.min_post_likes
        and ratio >= audience_threshold
        and support != "supported"
    ):
        reasons.append("audience")
        score = ratio / audience_threshold
    if support == "unsupported" and likes_recent >= cfg.min_post_likes:
        reasons.append("views")
        score = max(score, excess)
    evidence: dict[str, Any] = {
        "likers_hour": likes_recent,
        "likers_day": likes_day,
        "followers": followers,
        "audience_ratio": None if ratio is None else round(ratio, 4),
        "audience_threshold": round(audience_threshold, 4),
        "views_support": support,
    }
    if views is not None:
        completion = views.completion
        evidence.update(
            views=views.views,
            completions=views.completions,
            likes_at_snapshot=views.likes,
            completion_rate=None if completion is None else round(completion, 4),
        )
    return PostVerdict(bool(reasons), score, tuple(reasons), ratio, support, evidence)


def judge_author(followers: float, best_likes: float, threshold: float) -> tuple[bool, float]:
    """Bought followers? True when the best post's likers are under ``threshold`` × followers.

    The score is ``threshold / engagement`` (1.0 at the bar), capped at 100.

    >>> judge_author(50000, 60, threshold=0.005)
    (True, 4.1667)
    >>> judge_author(8000, 300, threshold=0.005)[0]
    False
    """
    engagement = best_likes / followers
    if engagement >= threshold:
        return False, threshold / max(engagement, 1e-9)
    return True, round(min(100.0, threshold / max(engagement, threshold / 100.0)), 4)


def log_ratio(likes: float, followers: float) -> float:
    """Log engagement, with zero likes counted as half a like.

    >>> round(log_ratio(30, 1000), 3)
    -3.507
    """
    return math.log(max(likes, 0.5) / followers)


class FanImbalanceDetector(Detector):
    """Flags bought likes (posts) and bought followers (authors).

    Parameters
    ----------
    config
        The ``[fan_imbalance]`` settings.
    windows
        The ``[windows]`` settings, for the per-post liker sets
        (:class:`~detectors.accounts.PostLikers`). Their ``max_members`` caps the counts (a
        count at the cap only bounds the truth from below and is never taken as "few likes")
        and the suspects kept per post.

    Evidence of a post finding: ``reasons`` (``audience``, ``views``), ``likers_hour``,
    ``likers_day``, ``followers``, ``tier``, ``audience_ratio``, ``audience_threshold``,
    ``views_support`` and, with a snapshot, ``views``, ``completions``,
    ``likes_at_snapshot``, ``completion_rate``; ``quick_likers_named``, ``follow_up``. Of an
    author finding: ``followers``, ``tier``, ``best_post``, ``best_post_likers``,
    ``engagement``, ``threshold``, ``observed_seconds``.
    """

    name: ClassVar[str] = "fan_imbalance"
    cross_account: ClassVar[bool] = True

    def __init__(self, config: FanImbalanceConfig, windows: WindowsConfig) -> None:
        self.config = config
        self.post_likers = PostLikers(windows)
        self.max_window_members = windows.max_members
        # Suspects kept per post: as many as a window key holds (alerts name max_accounts).
        self.max_suspects = max(windows.max_members, config.max_accounts)
        self.audience = EpochTierQuantiles(
            config.tier_bounds, config.audience_quantile, BASELINE_EPOCH_SECONDS
        )
        self.engagement = EpochTierQuantiles(
            config.tier_bounds, config.engagement_quantile, BASELINE_EPOCH_SECONDS
        )
        self.reports = SuspectReports(
            PREFIX, config.report_every_seconds, config.state_ttl_seconds, config.max_accounts
        )
        self._scripts: dict[int, Script] = {}

    # ------------------------------------------------------------------ thresholds

    def audience_threshold(self, tier: int, ts: float) -> float:
        """Audience ratio above which a post's likes are out of line, for ``tier`` at ``ts``."""
        cfg = self.config
        learned = self.audience.get(tier, cfg.min_samples, ts)
        if learned is None:
            return cfg.min_audience_ratio
        return max(cfg.min_audience_ratio, cfg.audience_factor * math.exp(learned))

    def engagement_threshold(self, tier: int, ts: float) -> float:
        """Best-post engagement under which an author's followers look bought, for ``tier``
        at ``ts``."""
        cfg = self.config
        learned = self.engagement.get(tier, cfg.min_samples, ts)
        if learned is None:
            return cfg.max_engagement
        return min(cfg.max_engagement, cfg.engagement_factor * math.exp(learned))

    # ---------------------------------------------------------------------- detect

    def prepare(self, batch: Batch) -> None:
        # The per-post liker sets, shared with the other account-centred detector.
        self.post_likers.activity(batch)

    def detect(self, batch: Batch) -> list[Finding]:
        if not batch.events:
            return []
        cfg = self.config
        events = batch.events
        activity = self.post_likers.activity(batch)
        if not activity:
            return []
        quick_ms = cfg.quick_dwell_ms
        quick: dict[str, list[str | float]] = {}
        positions: dict[str, list[int]] = {}  # per post, its likes in the batch
        for index, event in enumerate(events):
            if event.type != "like":
                continue
            likes = positions.get(event.post_id)
            if likes is None:
                positions[event.post_id] = [index]
            else:
                likes.append(index)
            dwell = event.dwell_ms
            if dwell is None or dwell < quick_ms:
                entry = quick.get(event.post_id)
                if entry is None:
                    quick[event.post_id] = [event.actor_id, event.ts]
                else:
                    entry += (event.actor_id, event.ts)
        now = max(e.ts for e in events)
        first = min(e.ts for e in events)
        watch, authors, snapshots = self._exchange(batch, activity, quick, now, first)
        observed = now - watch
        reports, ended = self.reports.follow_ups(batch.state, now)

        if batch.learn:
            self._learn_audience(batch, activity, positions, authors)
        self.audience.advance(now)
        self.engagement.advance(now)

        findings: list[Finding] = []
        requests: list[ReportRequest] = []
        context: dict[str, tuple[int, PostVerdict, int]] = {}
        for post, post_activity in activity.items():
            index = post_activity.index
            likes_day = post_activity.likers
            event = events[index]
            followers = authors[event.author_id].followers
            if post in snapshots:
                tier = self.audience.tier(followers) if followers else 0
                likes_recent, views, reported_until, scheduled = snapshots[post]
                threshold = self.audience_threshold(tier, event.ts)
                verdict = judge_post(likes_recent, likes_day, followers, threshold, views, cfg)
                if verdict.flagged:
                    subject = POST + post
                    # Likes up to where the post's last report ended are that report's; a
                    # report still running (its follow-up is not due yet) covers them all.
                    after = ended.get(subject, reported_until)
                    if after is None:
                        after = -math.inf
                    if (subject in ended or not scheduled) and event.ts > after:
                        index, verdict = self._crossing(
                            batch, positions[post], verdict, followers, tier, views, after
                        )
                        event = events[index]
                        self.audience.flag(post, event.ts)
                        since = max(event.ts - cfg.suspect_lookback_seconds, after)
                        requests.append(
                            ReportRequest(subject, since, event.ts, True, event.author_id)
                        )
                        context[subject] = (index, verdict, tier)

        if observed >= cfg.min_observed_seconds:
            for author_id, author in authors.items():
                finding = self._judge_author(batch, author_id, author, observed)
                if finding is not None:
                    findings.append(finding)

        if requests:
            reports += self.reports.run(batch.state, requests, now)
        for report in reports:
            initial = context.get(report.request.subject) if report.request.initial else None
            finding = self._post_finding(batch, report, initial)
            if finding is not None:
                findings.append(finding)
        return findings

    def _learn_audience(
        self,
        batch: Batch,
        activity: dict[str, PostActivity],
        positions: dict[str, list[int]],
        authors: dict[str, Author],
    ) -> None:
        """Hold a sample of each post whose likers in the day doubled (from
        ``learn_min_likes``) in this batch, taken at the like that made them double."""
        cfg = self.config
        events = batch.events
        for post, post_activity in activity.items():
            followers = authors[events[post_activity.index].author_id].followers
            if not followers:
                continue
            likes = positions[post]
            before = post_activity.likers - post_activity.added
            tier = self.audience.tier(followers)
            for mark in milestones(before, post_activity.likers, cfg.learn_min_likes):
                key = f"{post}:{mark}"
                if sampled(key, cfg.learn_fraction):
                    at = events[likes[min(mark - before, len(likes)) - 1]].ts
                    self.audience.learn(post, key, tier, log_ratio(mark, followers), at)

    def _crossing(
        self,
        batch: Batch,
        positions: list[int],
        verdict: PostVerdict,
        followers: float | None,
        tier: int,
        views: Views | None,
        after: float,
    ) -> tuple[int, PostVerdict]:
        """The first like of the batch at which the post was already flagged, and its verdict.

        A batch can span minutes of event time; the finding belongs to the like that tipped
        the post, not to its last like (``positions[-1]``, judged as ``verdict``). The counts
        at an earlier like are the counts at the last one minus the batch's later likes of
        the post: a lower bound (likes that left the window meanwhile are not added back), so
        the crossing is never placed too early; nor before the snapshot the verdict relies
        on, nor at or before ``after`` (where the post's last report ended). Each like is
        judged by the audience bar of its own time.
        """
        events = batch.events
        # A verdict that uses the snapshot cannot belong to a like before the snapshot.
        not_before = views.ts if views is not None else -math.inf
        likes_recent, likes_day = verdict.evidence["likers_hour"], verdict.evidence["likers_day"]
        later = len(positions) - 1
        for position in positions[:-1]:
            ts = events[position].ts
            if ts < not_before or ts <= after:
                later -= 1
                continue
            earlier = judge_post(
                likes_recent - later,
                likes_day - later,
                followers,
                self.audience_threshold(tier, ts),
                views,
                self.config,
            )
            if earlier.flagged:
                return position, earlier
            later -= 1
        return positions[-1], verdict

    def _judge_author(
        self, batch: Batch, author_id: str, author: Author, observed: float
    ) -> Finding | None:
        cfg = self.config
        followers, best = author.followers, author.best
        if not followers or followers < cfg.min_followers or best is None:
            return None
        event = batch.events[author.index]
        if self.max_window_members and best >= self.max_window_members:
            return None  # a capped count: "at least this many", never "few"
        tier = self.engagement.tier(followers)
        threshold = self.engagement_threshold(tier, event.ts)
        flagged, score = judge_author(followers, best, threshold)
        # One sample per author per epoch, its last (the flag keeps a flagged author's out).
        key = f"{author_id}:{self.engagement.epoch(event.ts)}"
        if batch.learn and sampled(key, cfg.learn_fraction):
            self.engagement.learn(author_id, key, tier, log_ratio(best, followers), event.ts)
        if not flagged:
            return None
        self.engagement.flag(author_id, event.ts)
        return Finding(
            detector=self.name,
            subject_kind="account",
            subject_id=author_id,
            accounts=(author_id,),
            score=score,
            event_time=event.ts,
            window_start=event.ts - min(observed, float(LIKER_WINDOWS[-1])),
            window_end=event.ts,
            trigger_event_id=event.event_id,
            evidence={
                "finding": "bought_followers",
                "followers": int(followers),
                "tier": tier,
                "best_post": author.best_post,
                "best_post_likers": int(best),
                "engagement": round(best / followers, 6),
                "threshold": round(threshold, 6),
                "observed_seconds": round(observed, 1),
            },
        )

    def _post_finding(
        self,
        batch: Batch,
        report: Report,
        context: tuple[int, PostVerdict, int] | None,
    ) -> Finding | None:
        post = report.request.subject[len(POST) :]
        accounts = list(report.suspects)
        author = report.author
        if context is None and not accounts:
            return None  # a follow-up with nothing new: the report ends here
        if author and author not in accounts:
            accounts.append(author)
        evidence: dict[str, Any] = {
            "finding": "bought_likes",
            "author_id": author,
            "quick_dwell_ms": self.config.quick_dwell_ms,
            "quick_likers_named": len(report.suspects),
            "reported_so_far": report.reported_total,
            "follow_up": context is None,
        }
        if context is not None:
            index, verdict, tier = context
            event = batch.events[index]
            event_time, trigger, score = event.ts, event.event_id, verdict.score
            outbox = None
            evidence.update(verdict.evidence, reasons=list(verdict.reasons), tier=tier)
        else:
            event_time, trigger, score = report.request.until, report.follow_up_id, 1.0
            outbox = first_at_or_after(batch.events, event_time)
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

    # ------------------------------------------------------------------------ redis

    def _exchange(
        self,
        batch: Batch,
        activity: dict[str, PostActivity],
        quick: dict[str, list[str | float]],
        now: float,
        first: float,
    ) -> tuple[
        float,
        dict[str, Author],
        dict[str, tuple[int, Views | None, float | None, bool]],
    ]:
        """One round trip; see ``imbalance.lua`` for what goes in and out.

        Returns the watch start, the batch's authors, and per post with enough likers to judge
        ``(likers in the last hour, newest snapshot, reported-until, follow-up scheduled)``.
        """
        cfg = self.config
        events = batch.events
        author_slot: dict[str, int] = {}
        author_index: dict[str, int] = {}
        tops: list[tuple[int, str, int]] = []
        judged: list[tuple[str, float]] = []
        min_likes = cfg.min_post_likes
        for post, post_activity in activity.items():
            index = post_activity.index
            author = events[index].author_id
            slot = author_slot.get(author)
            if slot is None:
                slot = author_slot[author] = len(author_slot) + 1
            author_index[author] = max(index, author_index.get(author, index))
            day = post_activity.likers
            tops.append((slot, post, day))
            if day >= min_likes:
                judged.append((post, events[index].ts))
        payload = {
            "authors": [[author, events[author_index[author]].ts] for author in author_slot],
            "tops": tops,
            "quick": list(quick.items()),
            "posts": judged,
        }
        args: list[str | int | float | bytes] = [
            batch.state.namespace,
            cfg.state_ttl_seconds,
            cfg.top_posts_kept,
            cfg.suspect_lookback_seconds,
            self.max_suspects,
            repr(first),
            cfg.min_followers,
            LIKER_WINDOWS[RECENT],
            script_json(payload),
        ]
        script = load_script(batch.state, "imbalance", self._scripts)
        with batch.state.timed("imbalance"):
            reply = json.loads(script(keys=[], args=args))
        watch = parse_float(reply["watch"])
        authors = {
            author: Author(
                followers=parse_float(followers),
                best=parse_float(best),
                best_post=str(best_post),
                index=author_index[author],
            )
            for author, (followers, best, best_post) in zip(
                author_slot, reply["authors"] or [], strict=True
            )
        }
        snapshots: dict[str, tuple[int, Views | None, float | None, bool]] = {}
        for (post, _), (recent, views, completions, at, likes, until, scheduled) in zip(
            judged, reply["posts"] or [], strict=True
        ):
            seen, done, snap_ts = parse_float(views), parse_float(completions), parse_float(at)
            snapshot = (
                None
                if seen is None
                else Views(
                    int(seen),
                    None if done is None else int(done),
                    int(likes or 0),
                    snap_ts if snap_ts is not None else -math.inf,
                )
            )
            snapshots[post] = (int(recent), snapshot, parse_float(until), bool(scheduled))
        return (now if watch is None else watch), authors, snapshots

    # ---------------------------------------------------------------------- models

    def model_state(self) -> Any:
        return {"audience": self.audience, "engagement": self.engagement}

    def load_model_state(self, state: Any) -> None:
        if not isinstance(state, dict):
            return
        cfg = self.config
        audience, engagement = state.get("audience"), state.get("engagement")
        if isinstance(audience, EpochTierQuantiles) and audience.compatible(
            cfg.tier_bounds, cfg.audience_quantile, BASELINE_EPOCH_SECONDS
        ):
            self.audience = audience
        if isinstance(engagement, EpochTierQuantiles) and engagement.compatible(
            cfg.tier_bounds, cfg.engagement_quantile, BASELINE_EPOCH_SECONDS
        ):
            self.engagement = engagement
