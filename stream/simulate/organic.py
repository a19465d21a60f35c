"""Organic traffic: turn an interaction stream into likes, unlikes, posts and account profiles.

Each creator publishes a series of posts (a back catalogue from before the scenario and new
posts during it). An engagement at time ``t`` likes the creator's newest post the user has not
already liked, scrolling back through the catalogue when needed. On top of that come the
human touches the detectors must not mistake for fraud: a per-user pace (nobody likes twice in
the same second), ordinary unlikes (mostly seconds to minutes after the like), a few accounts
that are genuinely new, a few devices shared by a household, and follower counts consistent
with the likes their posts get.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np

from stream.simulate.sources import InteractionStream
from stream.simulate.world import (
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    Account,
    Post,
    PostTable,
    World,
)

MAX_LIKES_PER_USER_HOUR = 60
HEADLINE_POSTS = 3
PACE_MEDIAN_GAP_S = 4.0
PROFILE_DEPTH = 12
UNLIKE_PROBABILITY_BETA = (1.0, 30.0)
NEW_NORMAL_PER_6H = 6
HOUSEHOLD_SHARE = 0.05
ENGAGEMENT_MEDIAN = 0.03
ENGAGEMENT_RANGE = (0.018, 0.045)


@dataclass
class PostSeries:
    """Creation times (ascending) of one creator's posts and the author's account key."""

    key: str
    author_key: str
    created_at: list[float]


@dataclass
class OrganicBuilder:
    """Account and post registration for organic traffic (ids made lazily, once per key)."""

    world: World
    rng: np.random.Generator
    account_ids: dict[str, str] = field(default_factory=dict)
    household: int = 0
    household_room: int = 0
    post_ids: dict[tuple[int, int], str] = field(default_factory=dict)

    def account(self, key: str) -> str:
        """Return the id of the organic account ``key``, registering it on first use."""
        known = self.account_ids.get(key)
        if known is not None:
            return known
        account_id = self.world.ids.make("u", key)
        age_days = float(np.clip(self.rng.lognormal(math.log(400.0), 0.9), 20.0, 4000.0))
        self.world.add_account(
            Account(
                account_id=account_id,
                created_at=round(self.world.start - age_days * SECONDS_PER_DAY, 3),
                followers=0,
                following=0,
                posts=0,
                device_id=self.device(key),
            )
        )
        self.account_ids[key] = account_id
        return account_id

    def device(self, key: str) -> str:
        """The account's own device, or (for a few) a device shared by a household of 2-4."""
        if self.rng.random() >= HOUSEHOLD_SHARE:
            return self.world.ids.make("d", key)
        if self.household_room == 0:
            self.household += 1
            self.household_room = int(self.rng.integers(2, 5))
        self.household_room -= 1
        return self.world.ids.make("d", f"household:{self.household}")

    def post(self, series: PostSeries, creator: int, index: int) -> str:
        """Return the id of post ``index`` of ``series``, registering it on first use."""
        known = self.post_ids.get((creator, index))
        if known is not None:
            return known
        post_id = self.world.ids.make("p", f"{series.key}/{index}")
        self.world.add_post(
            Post(
                post_id=post_id,
                author_id=self.account(series.author_key),
                created_at=round(series.created_at[index], 3),
                views_per_like=float(np.clip(self.rng.lognormal(math.log(18.0), 0.35), 6, 80)),
                completion_rate=float(self.rng.uniform(0.2, 0.6)),
            )
        )
        self.post_ids[(creator, index)] = post_id
        return post_id


def cap_heavy_users(
    users: np.ndarray, ts: np.ndarray, cap: int, rng: np.random.Generator
) -> np.ndarray:
    """Return the indices kept after thinning every user to at most ``cap`` engagements."""
    priority = rng.random(len(users))
    order = np.lexsort((priority, users))
    sorted_users = users[order]
    first = np.r_[True, sorted_users[1:] != sorted_users[:-1]]
    segment_start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    rank = np.arange(len(order)) - segment_start
    return np.sort(order[rank < cap])


def pace(
    users: np.ndarray, ts: np.ndarray, rng: np.random.Generator, user_count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Enforce a human pace per user: each engagement waits a short gap after the previous.

    Returns
    -------
    order, paced_ts, gap_before
        Indices of the engagements sorted by (user, time), their new times, and the time since
        the same user's previous engagement (``inf`` for a user's first).
    """
    order = np.lexsort((ts, users))
    if len(order) == 0:
        return order, ts[order], ts[order]
    sorted_users, sorted_ts = users[order], ts[order]
    user_gap = np.clip(rng.lognormal(math.log(PACE_MEDIAN_GAP_S), 0.5, user_count), 1.5, 30.0)
    gaps = user_gap[sorted_users] * rng.lognormal(0.0, 0.4, len(order))
    first = np.r_[True, sorted_users[1:] != sorted_users[:-1]]
    gaps[first] = 0.0
    cumulative = np.cumsum(gaps)
    segment = np.cumsum(first)
    shift = float(np.ptp(sorted_ts) + cumulative[-1] + 1.0)
    lifted = sorted_ts - cumulative + segment * shift
    paced = np.maximum.accumulate(lifted) - segment * shift + cumulative
    gap_before = np.r_[np.inf, np.diff(paced)]
    gap_before[first] = np.inf
    return order, paced, gap_before


def post_schedules(world: World, stream: InteractionStream) -> list[PostSeries]:
    """Draw each creator's back catalogue and its new posts during the scenario."""
    rng = world.rng("organic.schedules")
    series: list[PostSeries] = []
    for key, author_key in zip(stream.creator_keys, stream.creator_authors, strict=True):
        catalogue = int(np.clip(1 + rng.lognormal(math.log(8.0), 0.8), 1, 60))
        gaps = rng.lognormal(math.log(1.5 * SECONDS_PER_DAY), 0.7, catalogue)
        gaps[0] = rng.uniform(0.0, 2.0 * SECONDS_PER_DAY)
        old = world.start - np.cumsum(gaps)[::-1]
        per_hour = float(np.clip(rng.lognormal(math.log(0.3), 0.6), 0.05, 2.0))
        fresh_count = int(rng.poisson(per_hour * world.hours))
        fresh = np.sort(rng.uniform(world.start, world.end, fresh_count))
        series.append(PostSeries(key, author_key, [*old.tolist(), *fresh.tolist()]))
    return series


def _unlike_delays(rng: np.random.Generator, count: int) -> np.ndarray:
    """Delays from a like to an ordinary unlike: mis-taps, second thoughts, and later regrets."""
    component = rng.choice(3, size=count, p=[0.6, 0.3, 0.1])
    medians = np.array([5.0, 120.0, 3600.0])[component]
    spreads = np.array([0.6, 0.8, 0.8])[component]
    return np.maximum(1.0, rng.lognormal(np.log(medians), spreads))


def _organic_dwell(rng: np.random.Generator, gap_before: np.ndarray) -> np.ndarray:
    """Dwell before a like: seconds on the post, never longer than the gap since the last."""
    dwell = np.clip(rng.lognormal(math.log(8000.0), 0.8, len(gap_before)), 400.0, 120_000.0)
    bounded = np.minimum(dwell, 0.9 * gap_before * 1000.0)
    return np.maximum(250.0, bounded).astype(np.int64)


def _pick_post(state: dict[int, float], newest: int, at: float) -> int | None:
    """Newest post index at or below ``newest`` the user does not currently like."""
    for index in range(newest, max(-1, newest - PROFILE_DEPTH), -1):
        unliked_at = state.get(index)
        if unliked_at is None or unliked_at + 0.002 < at:
            return index
    return None


def resolve_likes(
    builder: OrganicBuilder,
    stream: InteractionStream,
    series: list[PostSeries],
) -> None:
    """Turn the stream into like and unlike actions on concrete posts."""
    world = builder.world
    rng = world.rng("organic.likes")
    cap = max(1, round(MAX_LIKES_PER_USER_HOUR * world.hours))
    kept = cap_heavy_users(stream.users, stream.ts, cap, rng)
    order, paced, gap_before = pace(stream.users[kept], stream.ts[kept], rng, len(stream.user_keys))
    source = kept[order]
    in_span = paced < world.end
    source, paced, gap_before = source[in_span], paced[in_span], gap_before[in_span]
    by_time = np.argsort(paced, kind="stable")
    unlike_probability = rng.beta(*UNLIKE_PROBABILITY_BETA, size=len(stream.user_keys))
    draws = rng.random(len(by_time))
    delays = _unlike_delays(rng, len(by_time))
    dwell = _organic_dwell(rng, gap_before)
    liked: dict[tuple[int, int], dict[int, float]] = {}
    for step, position in enumerate(by_time.tolist()):
        row = int(source[position])
        user, creator = int(stream.users[row]), int(stream.creators[row])
        at = float(paced[position])
        posts = series[creator]
        newest = bisect_right(posts.created_at, at) - 1
        state = liked.setdefault((user, creator), {})
        index = _pick_post(state, newest, at) if newest >= 0 else None
        if index is None:
            continue
        actor = builder.account(stream.user_keys[user])
        post_id = builder.post(posts, creator, index)
        world.act(at, "like", actor, post_id, int(dwell[position]), organic=True)
        state[index] = math.inf
        if draws[step] < unlike_probability[user] and at + delays[step] < world.end:
            unliked_at = at + float(delays[step])
            world.act(unliked_at, "unlike", actor, post_id, 0, organic=True)
            state[index] = unliked_at


def index_organic(world: World) -> None:
    """Fill :attr:`World.organic` from the organic actions recorded so far."""
    organic = world.organic
    organic.accounts = list(world.accounts)
    for action in world.actions:
        if action.kind != "like":
            continue
        organic.likes_by_post[action.post_id] = organic.likes_by_post.get(action.post_id, 0) + 1
        organic.likes_by_actor[action.actor_id] = organic.likes_by_actor.get(action.actor_id, 0) + 1
        organic.liked_by_actor.setdefault(action.actor_id, set()).add(action.post_id)
    for post in world.posts.values():
        organic.posts_by_author.setdefault(post.author_id, []).append(post.post_id)
    organic.authors = list(organic.posts_by_author)
    liked = list(organic.likes_by_post)
    organic.post_table = PostTable(
        post_ids=liked,
        created_at=np.array([world.posts[post_id].created_at for post_id in liked]),
        likes=np.array([organic.likes_by_post[post_id] for post_id in liked], dtype=float),
        index={post_id: index for index, post_id in enumerate(liked)},
    )


def choose_new_normal_accounts(world: World, scale: float) -> list[str]:
    """Pick a few moderately active non-authors first seen mid-scenario and make them new.

    Their ``created_at`` moves to minutes or hours before their first like; they keep liking
    at their ordinary (organic) rate.
    """
    rng = world.rng("organic.new_accounts")
    first_seen: dict[str, float] = {}
    for action in world.actions:
        first_seen.setdefault(action.actor_id, action.ts)
    duration = world.end - world.start
    candidates = [
        account_id
        for account_id, first in first_seen.items()
        if first >= world.start + 0.1 * duration
        and 3 <= world.organic.likes_by_actor.get(account_id, 0) <= 80
        and account_id not in world.organic.posts_by_author
    ]
    wanted = max(2, round(NEW_NORMAL_PER_6H * world.hours / 6.0 * scale))
    chosen = [candidates[int(i)] for i in rng.permutation(len(candidates))[:wanted]]
    for account_id in chosen:
        room = first_seen[account_id] - world.start
        lead = rng.uniform(0.05, 0.9) * min(room, 2 * SECONDS_PER_HOUR)
        world.accounts[account_id].created_at = round(first_seen[account_id] - lead, 3)
    return sorted(chosen)


def headline_likes(world: World, posts: list[str]) -> float:
    """Mean organic likes of an author's most liked posts (the ones their audience sees)."""
    likes = world.organic.likes_by_post
    top = sorted((likes.get(post_id, 0) for post_id in posts), reverse=True)[:HEADLINE_POSTS]
    return sum(top) / len(top)


def assign_profiles(world: World, new_accounts: list[str]) -> None:
    """Give organic accounts follower, following and post counts consistent with their likes.

    Authors get ``followers = likes per headline post / engagement`` (their most liked posts
    in the scenario), the engagement rate drawn around 3 % (2-4 % for most), so that
    fan-to-interaction checks see normal ratios. Everyone else gets heavy-tailed counts;
    genuinely new accounts get very small ones.
    """
    rng = world.rng("organic.profiles")
    organic = world.organic
    fresh = set(new_accounts)
    for account_id in organic.accounts:
        account = world.accounts[account_id]
        posts = organic.posts_by_author.get(account_id)
        if account_id in fresh:
            account.followers = int(min(rng.lognormal(math.log(4.0), 1.0), 60))
            account.following = int(rng.lognormal(math.log(25.0), 0.8))
            account.posts = int(rng.integers(0, 4))
        elif posts:
            engagement = float(
                np.clip(rng.lognormal(math.log(ENGAGEMENT_MEDIAN), 0.2), *ENGAGEMENT_RANGE)
            )
            floor = rng.lognormal(math.log(40.0), 0.7)
            account.followers = int(max(headline_likes(world, posts) / engagement, floor))
            account.following = int(rng.lognormal(math.log(300.0), 0.9))
            account.posts = len(posts) + int(rng.lognormal(math.log(30.0), 1.0))
        else:
            account.followers = int(min(rng.lognormal(math.log(90.0), 1.3), 20_000))
            account.following = int(min(rng.lognormal(math.log(180.0), 0.9), 7500))
            account.posts = int(rng.lognormal(math.log(15.0), 1.2))


def assign_base_views(world: World) -> None:
    """Give posts from before the scenario the views they gathered before it started."""
    rng = world.rng("organic.base_views")
    for post in world.posts.values():
        if post.created_at >= world.start:
            continue
        likes = world.organic.likes_by_post.get(post.post_id, 0)
        history = likes * rng.uniform(0.5, 3.0) + rng.lognormal(math.log(20.0), 1.0)
        post.base_views = int(post.views_per_like * history)


def build_organic(world: World, stream: InteractionStream, scale: float) -> None:
    """Generate all organic traffic into ``world`` and index it for the attack generators."""
    builder = OrganicBuilder(world, world.rng("organic.accounts"))
    resolve_likes(builder, stream, post_schedules(world, stream))
    index_organic(world)
    new_accounts = choose_new_normal_accounts(world, scale)
    world.organic.new_normal_accounts = new_accounts
    assign_profiles(world, new_accounts)
    assign_base_views(world)
