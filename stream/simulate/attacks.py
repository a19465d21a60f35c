"""Attack generators: labelled fake engagement injected on top of organic traffic.

Every generator draws its sizes and timings from its own random stream (derived from the
scenario seed and the attack id), writes its actions into the :class:`World`, and returns an
:class:`AttackRecord` for ``truth.json``. ``accounts`` are the fraudulent accounts (the ones
whose actions are fake, or the author who bought followers), ``beneficiaries`` the authors who
profit, ``start``/``end`` the event times of the attack's first and last fake action.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from stream.simulate.world import (
    SECONDS_PER_DAY,
    Account,
    AccountUpdate,
    AttackRecord,
    Post,
    World,
)

ATTACK_KINDS: tuple[str, ...] = (
    "burst",
    "new_account_spike",
    "fan_imbalance",
    "swarm",
    "churn",
    "ring",
)

MINUTE = 60.0


class AttackBuilder:
    """Book-keeping for one attack: its random stream, accounts, posts and time span.

    Parameters
    ----------
    world
        The scenario being built.
    kind, attack_id, variant
        Labels of the attack.
    """

    def __init__(self, world: World, kind: str, attack_id: str, variant: str) -> None:
        self.world = world
        self.kind = kind
        self.attack_id = attack_id
        self.variant = variant
        self.rng = world.rng(f"attack.{attack_id}")
        self.accounts: list[str] = []
        self.posts: dict[str, None] = {}
        self.beneficiaries: list[str] = []
        self.first = math.inf
        self.last = -math.inf
        self._serial = 0
        self._seen: set[str] = set()

    @property
    def span(self) -> float:
        """Scenario length in seconds."""
        return self.world.end - self.world.start

    def _key(self, role: str) -> str:
        self._serial += 1
        return f"{self.attack_id}:{role}:{self._serial}"

    def schedule(
        self, duration: float, lead: float = 0.0, tail: float = 0.0
    ) -> tuple[float, float]:
        """Fit an attack into the scenario and draw when it starts.

        Parameters
        ----------
        duration
            Wanted length of the attack's main phase, shortened to fit when needed.
        lead, tail
            Room needed before (e.g. creating posts) and after (e.g. a last window of likes),
            each capped at 15 % of the scenario.

        Returns
        -------
        start, duration
            The main phase runs over ``[start, start + duration]``; ``start - lead`` and
            ``start + duration + tail`` stay inside the scenario.
        """
        lead, tail = min(lead, 0.15 * self.span), min(tail, 0.15 * self.span)
        duration = max(0.0, min(duration, 0.8 * self.span - lead - tail))
        low = self.world.start + 0.05 * self.span + lead
        high = max(low, self.world.start + 0.98 * self.span - duration - tail)
        return float(self.rng.uniform(low, high)), duration

    def device(self, role: str) -> str:
        """Return a new device id, not shared with any organic account."""
        return self.world.ids.make("d", self._key(role))

    def new_account(
        self,
        role: str,
        created_at: float,
        followers: int,
        following: int,
        posts: int,
        device_id: str,
    ) -> str:
        """Register a fraudulent account created by this attack and return its id."""
        key = self._key(role)
        account_id = self.world.ids.make("u", key)
        self.world.add_account(
            Account(account_id, round(created_at, 3), followers, following, posts, device_id)
        )
        self.enlist(account_id)
        return account_id

    def enlist(self, account_id: str) -> None:
        """Label ``account_id`` as one of this attack's fraudulent accounts."""
        self.accounts.append(account_id)
        self.world.attack_accounts.add(account_id)

    def benefit(self, author_id: str) -> None:
        """Label ``author_id`` as a beneficiary of this attack."""
        if author_id not in self.beneficiaries:
            self.beneficiaries.append(author_id)
        self.world.attack_accounts.add(author_id)

    def new_post(self, author_id: str, created_at: float) -> str:
        """Create a post for ``author_id`` with an ordinary view model."""
        post_id = self.world.ids.make("p", self._key("post"))
        self.world.add_post(
            Post(
                post_id=post_id,
                author_id=author_id,
                created_at=round(created_at, 3),
                views_per_like=float(np.clip(self.rng.lognormal(math.log(18.0), 0.35), 6, 80)),
                completion_rate=float(self.rng.uniform(0.2, 0.6)),
            )
        )
        return post_id

    def like(
        self, ts: float, actor_id: str, post_id: str, dwell_ms: float, device_id: str | None = None
    ) -> None:
        """Record a fake like (inside the attack's span)."""
        self._fake(ts, "like", actor_id, post_id, dwell_ms, device_id)

    def unlike(self, ts: float, actor_id: str, post_id: str, device_id: str | None = None) -> None:
        """Record a fake unlike (inside the attack's span)."""
        self._fake(ts, "unlike", actor_id, post_id, 0, device_id)

    def _fake(
        self,
        ts: float,
        kind: str,
        actor_id: str,
        post_id: str,
        dwell_ms: float,
        device_id: str | None,
    ) -> None:
        if not self.world.start <= ts < self.world.end:
            raise ValueError(f"{self.attack_id}: {kind} at {ts} outside the scenario")
        action = self.world.act(
            ts,
            "like" if kind == "like" else "unlike",
            actor_id,
            post_id,
            int(dwell_ms),
            organic=False,
            device_id=device_id,
        )
        self.posts[post_id] = None
        self._seen.add(actor_id)
        self.first = min(self.first, action.ts)
        self.last = max(self.last, action.ts)

    def organic_like(self, ts: float, actor_id: str, post_id: str) -> None:
        """Record a genuine like on an attack post (real followers still engage); likes that
        would fall outside the scenario are left out."""
        if not self.world.start <= ts < self.world.end:
            return
        self.posts[post_id] = None
        dwell = np.clip(self.rng.lognormal(math.log(8000.0), 0.8), 400, 120_000)
        self.world.act(ts, "like", actor_id, post_id, int(dwell), organic=True)

    def update_followers(self, ts: float, account_id: str, followers: int) -> None:
        """Emit a later account snapshot with a new follower count."""
        self.world.updates.append(AccountUpdate(round(ts, 3), account_id, followers))
        self._seen.add(account_id)
        self.first = min(self.first, round(ts, 3))
        self.last = max(self.last, round(ts, 3))

    def record(self, params: dict[str, object]) -> AttackRecord:
        """Return the truth record of this attack (accounts that never acted are left out)."""
        authors = sorted({self.world.posts[post_id].author_id for post_id in self.posts})
        return AttackRecord(
            kind=self.kind,
            attack_id=self.attack_id,
            accounts=[account for account in self.accounts if account in self._seen],
            posts=list(self.posts),
            authors=authors,
            beneficiaries=list(self.beneficiaries),
            start=self.first,
            end=self.last,
            params={"variant": self.variant, **params},
        )


# ---------------------------------------------------------------- shared pickers and profiles


def bot_dwell(rng: np.random.Generator, size: int) -> np.ndarray:
    """Dwell of scripted likes: well under the "view at least 15 s" bar."""
    return np.clip(rng.lognormal(math.log(700.0), 0.5, size), 80.0, 3000.0)


def human_dwell(rng: np.random.Generator, size: int) -> np.ndarray:
    """Dwell of likes pressed by people (ring members)."""
    return np.clip(rng.lognormal(math.log(6000.0), 0.7, size), 400.0, 120_000.0)


def aged_created_at(b: AttackBuilder, min_days: float, max_days: float) -> float:
    """Creation time of an account registered long before the scenario."""
    return b.world.start - float(b.rng.uniform(min_days, max_days)) * SECONDS_PER_DAY


def farm_accounts(b: AttackBuilder, count: int, role: str, per_device: float) -> list[str]:
    """Register ``count`` aged farm accounts sharing devices (about ``per_device`` each)."""
    device_count = max(1, round(count / per_device))
    devices = [b.device(f"{role}-device") for _ in range(device_count)]
    return [
        b.new_account(
            role,
            created_at=aged_created_at(b, 20.0, 700.0),
            followers=int(b.rng.lognormal(math.log(12.0), 1.0)),
            following=int(b.rng.lognormal(math.log(600.0), 0.6)),
            posts=int(b.rng.integers(0, 3)),
            device_id=devices[int(b.rng.integers(device_count))],
        )
        for _ in range(count)
    ]


def sample_posts(
    b: AttackBuilder, count: int, at: float, popular: bool, exclude: set[str] | None = None
) -> list[str]:
    """Sample distinct organic posts published by ``at``: uniformly, or in proportion to their
    organic likes (popularity-biased), leaving out ``exclude``."""
    table = b.world.organic.post_table
    eligible = table.created_at <= at
    for post_id in exclude or ():
        index = table.index.get(post_id)
        if index is not None:
            eligible[index] = False
    candidates = np.flatnonzero(eligible)
    count = min(count, len(candidates))
    if count <= 0:
        return []
    counts = table.likes[candidates]
    weights = counts / counts.sum() if popular else None
    chosen = b.rng.choice(candidates, size=count, replace=False, p=weights)
    return [table.post_ids[int(index)] for index in chosen]


def pick_authors(
    b: AttackBuilder, count: int, followers: tuple[int, int] = (0, 10**9)
) -> list[str]:
    """Pick organic authors not yet in any attack, preferring the given follower range."""
    free = [
        author
        for author in b.world.organic.authors
        if author not in b.world.attack_accounts
        and author not in b.world.organic.new_normal_accounts
    ]
    in_range = [
        author
        for author in free
        if followers[0] <= b.world.accounts[author].followers <= followers[1]
    ]
    pool = in_range if len(in_range) >= count else free
    chosen = b.rng.permutation(len(pool))[:count]
    return [pool[int(index)] for index in chosen]


def organic_likers(b: AttackBuilder, count: int, author: str) -> list[str]:
    """Pick distinct active organic accounts (other than ``author``) as genuine followers."""
    pool = [
        account
        for account in b.world.organic.likes_by_actor
        if account not in b.world.attack_accounts and account != author
    ]
    if not pool:
        return []
    chosen = b.rng.permutation(len(pool))[:count]
    return [pool[int(index)] for index in chosen]


@dataclass(frozen=True)
class FakeViewing:
    """How many views a fake like brings to a post, and what share of them complete."""

    views_per_like: float
    completion_rate: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> FakeViewing:
        """Draw one attack's viewing habit: from "button only" to "plays the post a bit"."""
        return cls(float(rng.uniform(1.0, 12.0)), float(rng.uniform(0.0, 0.15)))

    def apply(self, post: Post) -> None:
        """Give ``post`` this view model for its non-organic likes."""
        post.bot_views_per_like = self.views_per_like
        post.bot_completion_rate = self.completion_rate


def customer_posts(
    b: AttackBuilder,
    customers: Sequence[str],
    per_customer: tuple[int, int],
    before: float,
    limit: int | None = None,
) -> list[str]:
    """Create fresh posts for paying customers, published shortly before ``before``; at most
    ``limit`` posts in all, and only customers who get a post count as beneficiaries.

    How many views a fake like brings (and how many of those complete) is drawn once per
    attack: some farms only press the button, others also play the post for a while.
    """
    posts: list[str] = []
    viewing = FakeViewing.draw(b.rng)
    room = limit if limit is not None else math.inf
    for customer in customers:
        wanted = min(int(b.rng.integers(per_customer[0], per_customer[1] + 1)), room)
        if wanted <= 0:
            break
        b.benefit(customer)
        for _ in range(int(wanted)):
            post_id = b.new_post(customer, before - float(b.rng.uniform(5, 180)) * MINUTE)
            viewing.apply(b.world.posts[post_id])
            posts.append(post_id)
        room -= wanted
    return posts


def sorted_times(b: AttackBuilder, start: float, duration: float, count: int) -> np.ndarray:
    """``count`` sorted times in ``[start, start + duration]``, the first exactly at ``start``."""
    times = np.sort(b.rng.uniform(start, start + duration, count))
    if count:
        times[0] = start
    return times


# ---------------------------------------------------------------------------------- burst


def burst(b: AttackBuilder) -> AttackRecord:
    """A taken-over account likes many posts at a high rate.

    ``fast``: 50-300 likes in 2-15 minutes; ``slow``: 150-600 likes over 1.5-4 hours. Part of
    the likes go to fresh posts of 1-3 paying customers, the rest to organic posts.
    """
    rng = b.rng
    if b.variant == "fast":
        count, duration = int(rng.integers(50, 301)), float(rng.uniform(2, 15)) * MINUTE
    else:
        count, duration = int(rng.integers(150, 601)), float(rng.uniform(1.5, 4.0)) * 3600
    start, duration = b.schedule(duration)
    account = _takeover_account(b)
    b.enlist(account)
    device = b.device("takeover-device")
    customers = pick_authors(b, int(rng.integers(1, 4)))
    paid = customer_posts(b, customers, (3, 15), start, round(count * rng.uniform(0.3, 0.6)))
    liked_before = b.world.organic.liked_by_actor.get(account, set())
    others = sample_posts(b, count - len(paid), start, bool(rng.random() < 0.5), liked_before)
    targets = [*paid, *others]
    order = rng.permutation(len(targets))
    times = sorted_times(b, start, duration, len(targets))
    dwell = bot_dwell(rng, len(targets))
    for position, index in enumerate(order):
        b.like(float(times[position]), account, targets[int(index)], float(dwell[position]), device)
    return b.record(
        {"likes": len(targets), "duration_s": round(duration, 1), "customer_likes": len(paid)}
    )


def _takeover_account(b: AttackBuilder) -> str:
    """An established organic non-author with modest activity, free of other attacks."""
    organic = b.world.organic
    fresh = set(organic.new_normal_accounts)
    free = [
        account
        for account, likes in organic.likes_by_actor.items()
        if account not in fresh and account not in b.world.attack_accounts
    ]
    modest = [
        account
        for account in free
        if 1 <= organic.likes_by_actor[account] <= 30 and account not in organic.posts_by_author
    ]
    pool = modest or free
    return pool[int(b.rng.integers(len(pool)))]


# ---------------------------------------------------------------------- new_account_spike


def new_account_spike(b: AttackBuilder) -> AttackRecord:
    """Freshly registered accounts liking at a high rate (``actor``) or all piling onto one
    author's post (``target``)."""
    if b.variant == "actor":
        return _new_accounts_actor_side(b)
    return _new_accounts_target_side(b)


def _fresh_account(b: AttackBuilder, created_at: float, device_id: str) -> str:
    return b.new_account(
        "fresh",
        created_at=created_at,
        followers=int(b.rng.integers(0, 6)),
        following=int(b.rng.integers(0, 31)),
        posts=0,
        device_id=device_id,
    )


def _new_accounts_actor_side(b: AttackBuilder) -> AttackRecord:
    """3-12 accounts, each created 2-30 minutes before it starts liking 30-150 posts."""
    rng = b.rng
    count = int(rng.integers(3, 13))
    stagger = min(30 * MINUTE, 0.3 * b.span)
    start, _ = b.schedule(stagger + 40 * MINUTE)
    devices = [b.device("fresh-device") for _ in range(int(rng.integers(1, 4)))]
    paid = customer_posts(b, pick_authors(b, int(rng.integers(1, 3))), (5, 10), start)
    gap_median = float(rng.uniform(3.0, 10.0))
    total = 0
    for offset in sorted_times(b, 0.0, stagger, count):
        first = start + float(offset)
        created = first - float(rng.uniform(2, 30)) * MINUTE
        account = _fresh_account(b, created, devices[int(rng.integers(len(devices)))])
        likes = int(rng.integers(30, 151))
        targets = [*paid, *sample_posts(b, likes - len(paid), start, popular=True)]
        targets = [targets[int(index)] for index in rng.permutation(len(targets))]
        gaps = np.clip(rng.lognormal(math.log(gap_median), 0.5, len(targets)), 1.0, 30.0)
        gaps[0] = 0.0
        times = first + np.cumsum(gaps)
        dwell = bot_dwell(rng, len(targets))
        for at, post_id, pause in zip(times, targets, dwell, strict=True):
            if at < b.world.end:
                b.like(float(at), account, post_id, float(pause))
                total += 1
    return b.record({"accounts": count, "likes": total, "median_gap_s": round(gap_median, 2)})


def _new_accounts_target_side(b: AttackBuilder) -> AttackRecord:
    """20-80 accounts created minutes before they all like one author's new post."""
    rng = b.rng
    author = pick_authors(b, 1, (200, 20_000))[0]
    b.benefit(author)
    ramp = float(rng.uniform(10, 40)) * MINUTE
    start, ramp = b.schedule(ramp)
    target = b.new_post(author, start - float(rng.uniform(2, 30)) * MINUTE)
    FakeViewing.draw(rng).apply(b.world.posts[target])
    own_posts = [
        post_id
        for post_id in b.world.organic.posts_by_author.get(author, [])
        if b.world.posts[post_id].created_at <= start
    ]
    count = int(rng.integers(20, 81))
    devices = [b.device("fresh-device") for _ in range(max(1, round(count / rng.uniform(4, 10))))]
    for at in sorted_times(b, start, ramp, count):
        account = _fresh_account(
            b,
            float(at) - float(rng.uniform(1, 60)) * MINUTE,
            devices[int(rng.integers(len(devices)))],
        )
        b.like(float(at), account, target, float(bot_dwell(rng, 1)[0]))
        if own_posts and rng.random() < 0.3:
            extra = rng.permutation(len(own_posts))[: int(rng.integers(1, 4))]
            for step, index in enumerate(extra, start=1):
                later = float(at) + step * float(rng.uniform(3, 20))
                if later < b.world.end:
                    b.like(later, account, own_posts[int(index)], float(bot_dwell(rng, 1)[0]))
    return b.record({"accounts": count, "ramp_s": round(ramp, 1), "target_post": target})


# -------------------------------------------------------------------------- fan_imbalance


def fan_imbalance(b: AttackBuilder) -> AttackRecord:
    """Engagement out of line with audience: ``bought_followers`` or ``bought_likes``."""
    if b.variant == "bought_followers":
        return _bought_followers(b)
    return _bought_likes(b)


def _bought_followers(b: AttackBuilder) -> AttackRecord:
    """An author gains 10k-60k followers at once; their posts keep getting a few likes."""
    rng = b.rng
    author = pick_authors(b, 1, (100, 3000))[0]
    b.enlist(author)
    b.benefit(author)
    original = b.world.accounts[author].followers
    bought = int(rng.integers(10_000, 60_001))
    jump = b.world.start + float(rng.uniform(0.1, 0.4)) * b.span
    b.update_followers(jump, author, original + bought)
    new_posts = []
    for _ in range(int(rng.integers(2, 5))):
        created = jump + float(rng.uniform(0.0, 0.4)) * b.span
        post_id = b.new_post(author, created)
        new_posts.append(post_id)
        audience = int(rng.poisson(original * rng.uniform(0.02, 0.04)))
        for liker in organic_likers(b, audience, author):
            delay = np.clip(rng.lognormal(math.log(20 * MINUTE), 1.0), 10, 6 * 3600)
            b.organic_like(created + float(delay), liker, post_id)
    for post_id in b.world.organic.posts_by_author.get(author, []):
        b.posts[post_id] = None
    return b.record(
        {"followers_before": original, "followers_bought": bought, "new_posts": len(new_posts)}
    )


def _bought_likes(b: AttackBuilder) -> AttackRecord:
    """A small author's post gets 400-2000 likes from aged bots within 15-120 minutes; views
    rise about as much as likes but completions do not (completion rate ends under 5 %)."""
    rng = b.rng
    author = pick_authors(b, 1, (100, 1500))[0]
    b.benefit(author)
    followers = b.world.accounts[author].followers
    start, delivery = b.schedule(float(rng.uniform(15, 120)) * MINUTE, lead=60 * MINUTE)
    post_id = b.new_post(author, start - float(rng.uniform(5, 60)) * MINUTE)
    post = b.world.posts[post_id]
    genuine = 0
    audience = int(rng.poisson(followers * rng.uniform(0.015, 0.04)))
    for liker in organic_likers(b, audience, author):
        delay = np.clip(rng.lognormal(math.log(30 * MINUTE), 1.0), 10, 5 * 3600)
        before = len(b.world.actions)
        b.organic_like(post.created_at + float(delay), liker, post_id)
        genuine += len(b.world.actions) - before
    count = min(3000, max(int(rng.integers(400, 2001)), 3 * followers))
    bots = farm_accounts(b, count, "like-bot", per_device=float(rng.uniform(15, 40)))
    dwell = bot_dwell(rng, count)
    for bot, at, pause in zip(bots, sorted_times(b, start, delivery, count), dwell, strict=True):
        b.like(float(at), bot, post_id, float(pause))
    _cap_completion(post, genuine, count, rng)
    return b.record(
        {
            "likes_bought": count,
            "author_followers": followers,
            "genuine_likes": genuine,
            "delivery_s": round(delivery, 1),
        }
    )


def _cap_completion(post: Post, genuine: int, bought: int, rng: np.random.Generator) -> None:
    """Set the post's view model so bought likes bring views but almost no completions."""
    post.bot_views_per_like = float(rng.uniform(1.0, 1.3))
    post.bot_completion_rate = 0.005
    organic_views = post.views_per_like * genuine
    total_views = organic_views + post.bot_views_per_like * bought
    if organic_views > 0:
        allowed = (
            0.035 * total_views - post.bot_completion_rate * post.bot_views_per_like * bought
        ) / organic_views
        post.completion_rate = float(np.clip(min(post.completion_rate, allowed), 0.0, 1.0))


# ---------------------------------------------------------------------------------- swarm


def swarm(b: AttackBuilder) -> AttackRecord:
    """A lockstep farm: the FRAUDAR injected block (Hooi et al., KDD 2016) on a timeline.

    ``m`` farm accounts x ``n`` fresh customer posts, each pair liked with probability ``p``,
    all likes of a post within a few minutes. Camouflage (variant): each account also likes
    about ``ratio`` x its block likes of organic posts, chosen uniformly (``random_camouflage``)
    or in proportion to their organic likes (``popular_camouflage``).
    """
    rng = b.rng
    members, posts_count = int(rng.integers(20, 101)), int(rng.integers(10, 41))
    density = float(rng.uniform(0.3, 0.9))
    window = min(float(rng.uniform(60, 300)), 0.15 * b.span)
    start, duration = b.schedule(float(rng.uniform(1.0, 4.0)) * 3600, tail=window)
    farm = farm_accounts(b, members, "farm", per_device=float(rng.uniform(5, 20)))
    customers = pick_authors(b, int(rng.integers(1, 5)))
    slots = sorted_times(b, start, duration, posts_count)
    viewing = FakeViewing.draw(rng)
    targets = []
    for index, slot in enumerate(slots):
        customer = customers[index % len(customers)]
        b.benefit(customer)
        targets.append(b.new_post(customer, float(slot) - float(rng.uniform(1, 30)) * MINUTE))
        viewing.apply(b.world.posts[targets[-1]])
    block = _block(rng, members, posts_count, density)
    for column, slot in enumerate(slots):
        rows = np.flatnonzero(block[:, column])
        for row, offset, pause in zip(
            rows, rng.uniform(0, window, len(rows)), bot_dwell(rng, len(rows)), strict=True
        ):
            b.like(float(slot + offset), farm[int(row)], targets[column], float(pause))
    ratio = float(rng.uniform(0.5, 1.5))
    popular = b.variant == "popular_camouflage"
    camouflage = _camouflage(b, farm, block.sum(axis=1), ratio, popular, start, duration)
    return b.record(
        {
            "m": members,
            "n": posts_count,
            "p": round(density, 3),
            "density": round(float(block.mean()), 3),
            "window_s": round(window, 1),
            "camouflage": "popular" if popular else "random",
            "camouflage_ratio": round(ratio, 3),
            "camouflage_likes": camouflage,
            "block_posts": targets,
        }
    )


def _block(rng: np.random.Generator, rows: int, columns: int, density: float) -> np.ndarray:
    """Bernoulli(density) block where every row has at least one edge."""
    block = rng.random((rows, columns)) < density
    for row in np.flatnonzero(~block.any(axis=1)):
        block[row, int(rng.integers(columns))] = True
    return block


def _camouflage(
    b: AttackBuilder,
    farm: list[str],
    block_likes: np.ndarray,
    ratio: float,
    popular: bool,
    start: float,
    duration: float,
) -> int:
    """Camouflage likes on organic posts, spread over the attack's span."""
    total = 0
    for account, own in zip(farm, block_likes, strict=True):
        picks = sample_posts(b, round(ratio * int(own)), start, popular)
        times = b.rng.uniform(start, start + duration, len(picks))
        for at, post_id, pause in zip(times, picks, bot_dwell(b.rng, len(picks)), strict=True):
            b.like(float(at), account, post_id, float(pause))
        total += len(picks)
    return total


# ---------------------------------------------------------------------------------- churn


def churn(b: AttackBuilder) -> AttackRecord:
    """1-5 bots cycling like/unlike on a pool of posts, 100-400 cycles each."""
    rng = b.rng
    bots_count = int(rng.integers(1, 6))
    bots = farm_accounts(b, bots_count, "churn-bot", per_device=float(rng.uniform(1, 3)))
    cycles = [int(rng.integers(100, 401)) for _ in bots]
    start, _ = b.schedule(max(cycles) * 25.0)
    done = []
    for bot, wanted in zip(bots, cycles, strict=True):
        pool = sample_posts(b, int(rng.integers(10, 61)), start, popular=True)
        done.append(_cycle(b, bot, pool, start + float(rng.uniform(0, 10)) * MINUTE, wanted))
    return b.record({"bots": bots_count, "cycles": done})


def _cycle(b: AttackBuilder, bot: str, pool: list[str], at: float, wanted: int) -> int:
    """Like then unlike within seconds, ``wanted`` times; return the cycles completed."""
    rng = b.rng
    for cycle in range(wanted):
        post_id = pool[int(rng.integers(len(pool)))]
        undo = at + float(rng.uniform(1.0, 20.0))
        if undo >= b.world.end:
            return cycle
        b.like(at, bot, post_id, float(bot_dwell(rng, 1)[0]))
        b.unlike(undo, bot, post_id)
        at = undo + float(np.clip(rng.lognormal(math.log(10.0), 0.6), 2.0, 60.0))
    return wanted


# ----------------------------------------------------------------------------------- ring


def ring(b: AttackBuilder) -> AttackRecord:
    """A like-for-like group: 5-30 members who are also authors, each liking most other
    members' posts, minutes to hours after they appear, over 3-5 hours."""
    rng = b.rng
    size = int(rng.integers(5, 31))
    start, duration = b.schedule(float(rng.uniform(3.0, 5.0)) * 3600)
    members = [_ring_member(b) for _ in range(size)]
    like_probability = float(rng.uniform(0.7, 0.95))
    posts: list[tuple[str, str, float]] = []
    for member in members:
        for created in rng.uniform(start, start + duration, int(rng.integers(2, 7))):
            post_id = b.new_post(member, float(created))
            post = b.world.posts[post_id]
            post.bot_views_per_like = float(rng.uniform(2.0, 6.0))
            post.bot_completion_rate = float(rng.uniform(0.1, 0.4))
            posts.append((post_id, member, float(created)))
    given, possible = 0, 0
    for post_id, owner, created in posts:
        for member in members:
            if member == owner:
                continue
            possible += 1
            delay = float(np.clip(rng.lognormal(math.log(15 * MINUTE), 0.9), 30.0, 3 * 3600))
            if rng.random() < like_probability and created + delay < b.world.end:
                b.like(created + delay, member, post_id, float(human_dwell(rng, 1)[0]))
                given += 1
    for member in members:
        picks = sample_posts(b, int(rng.integers(3, 16)), start, popular=False)
        for at, post_id in zip(
            rng.uniform(start, start + duration, len(picks)), picks, strict=True
        ):
            b.like(float(at), member, post_id, float(human_dwell(rng, 1)[0]))
    for member in members:
        b.benefit(member)
    return b.record(
        {
            "members": size,
            "posts": len(posts),
            "like_probability": round(like_probability, 3),
            "mutual_likes": given,
            "mutual_share": round(given / max(1, possible), 3),
        }
    )


def _ring_member(b: AttackBuilder) -> str:
    """An aged, normal-looking account with its own device."""
    return b.new_account(
        "ring-member",
        created_at=aged_created_at(b, 90.0, 1500.0),
        followers=int(b.rng.lognormal(math.log(600.0), 0.8)),
        following=int(b.rng.lognormal(math.log(500.0), 0.6)),
        posts=int(b.rng.integers(20, 201)),
        device_id=b.device("ring-device"),
    )


# ------------------------------------------------------------------------------ catalogue


@dataclass(frozen=True)
class AttackPlan:
    """One attack to inject: its kind, variant and generator."""

    kind: str
    variant: str
    generate: Callable[[AttackBuilder], AttackRecord]


VARIANTS: dict[str, tuple[tuple[str, int], ...]] = {
    "burst": (("fast", 2), ("slow", 1)),
    "new_account_spike": (("actor", 1), ("target", 1)),
    "fan_imbalance": (("bought_followers", 1), ("bought_likes", 1)),
    "swarm": (("random_camouflage", 1), ("popular_camouflage", 1)),
    "churn": (("cycling", 1),),
    "ring": (("like_for_like", 1),),
}

GENERATORS: dict[str, Callable[[AttackBuilder], AttackRecord]] = {
    "burst": burst,
    "new_account_spike": new_account_spike,
    "fan_imbalance": fan_imbalance,
    "swarm": swarm,
    "churn": churn,
    "ring": ring,
}


def plan_attacks(kinds: Sequence[str], hours: float) -> list[AttackPlan]:
    """List the attacks for ``kinds``: each variant's base count per 6 hours (at least one)."""
    repeat = max(1, round(hours / 6.0))
    return [
        AttackPlan(kind, variant, GENERATORS[kind])
        for kind in ATTACK_KINDS
        if kind in kinds
        for variant, count in VARIANTS[kind]
        for _ in range(count * repeat)
    ]


def inject_attacks(world: World, kinds: Sequence[str]) -> list[AttackRecord]:
    """Run every planned attack against ``world`` and return their truth records."""
    records = []
    serial: dict[str, int] = {}
    for plan in plan_attacks(kinds, world.hours):
        serial[plan.kind] = serial.get(plan.kind, 0) + 1
        attack_id = f"{plan.kind}-{serial[plan.kind]}"
        records.append(plan.generate(AttackBuilder(world, plan.kind, attack_id, plan.variant)))
    return records
