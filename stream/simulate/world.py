"""Shared state of one simulated scenario: accounts, posts, actions and opaque ids.

Organic traffic and every attack generator write into one :class:`World`; the scenario
builder then turns it into contract events (snapshots, likes, unlikes) and the truth file.
Identifiers are opaque hashes of a seed and a descriptive key, so that nothing in an id tells
organic accounts from fraudulent ones: the labels live in ``truth.json`` only.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

ActionKind = Literal["like", "unlike"]

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86_400.0


def stable_hash(text: str) -> int:
    """Return a process-independent 32-bit hash of ``text`` (``hash()`` is salted per run)."""
    return zlib.crc32(text.encode("utf-8"))


@dataclass(slots=True)
class Account:
    """An account as the platform would describe it in an account snapshot."""

    account_id: str
    created_at: float
    followers: int
    following: int
    posts: int
    device_id: str


@dataclass(slots=True)
class Post:
    """A post and the parameters of its view model.

    Views grow with likes: ``views_per_like`` views for each organic like and
    ``bot_views_per_like`` for each non-organic one (fake likes rarely come with watched views).
    Completions are ``completion_rate`` of organic views plus ``bot_completion_rate`` of bot
    views.
    """

    post_id: str
    author_id: str
    created_at: float
    views_per_like: float
    completion_rate: float
    base_views: int = 0
    bot_views_per_like: float = 1.1
    bot_completion_rate: float = 0.01


@dataclass(slots=True)
class Action:
    """One button press: a like or an unlike, before event ids are assigned."""

    ts: float
    kind: ActionKind
    actor_id: str
    post_id: str
    dwell_ms: int
    device_id: str
    organic: bool


@dataclass(slots=True)
class AccountUpdate:
    """A later account snapshot with changed counters (e.g. bought followers arriving)."""

    ts: float
    account_id: str
    followers: int


@dataclass(slots=True)
class AttackRecord:
    """The ground truth of one injected attack, as written to ``truth.json``."""

    kind: str
    attack_id: str
    accounts: list[str]
    posts: list[str]
    authors: list[str]
    beneficiaries: list[str]
    start: float
    end: float
    params: dict[str, object]

    def to_json(self) -> dict[str, object]:
        """Return the JSON object for the truth file (lists sorted, times in ms precision)."""
        return {
            "kind": self.kind,
            "attack_id": self.attack_id,
            "accounts": sorted(self.accounts),
            "posts": sorted(self.posts),
            "authors": sorted(self.authors),
            "beneficiaries": sorted(self.beneficiaries),
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "params": self.params,
        }


class IdFactory:
    """Make opaque, deterministic, collision-free ids from descriptive keys.

    Parameters
    ----------
    seed
        Scenario seed; the same seed and key always give the same id.
    """

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._by_key: dict[str, str] = {}
        self._taken: set[str] = set()

    def make(self, prefix: str, key: str) -> str:
        """Return the id for ``key``: ``prefix`` followed by 10 hex digits."""
        full_key = f"{prefix}|{key}"
        known = self._by_key.get(full_key)
        if known is not None:
            return known
        salt = 0
        while True:
            material = f"{self._seed}|{full_key}|{salt}".encode()
            candidate = prefix + hashlib.blake2b(material, digest_size=5).hexdigest()
            if candidate not in self._taken:
                break
            salt += 1
        self._taken.add(candidate)
        self._by_key[full_key] = candidate
        return candidate


@dataclass
class PostTable:
    """Organically liked posts as arrays, for fast sampling by the attack generators."""

    post_ids: list[str] = field(default_factory=list)
    created_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    likes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    index: dict[str, int] = field(default_factory=dict)


@dataclass
class OrganicIndex:
    """What attack generators need to know about organic traffic."""

    accounts: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    new_normal_accounts: list[str] = field(default_factory=list)
    likes_by_post: dict[str, int] = field(default_factory=dict)
    likes_by_actor: dict[str, int] = field(default_factory=dict)
    posts_by_author: dict[str, list[str]] = field(default_factory=dict)
    liked_by_actor: dict[str, set[str]] = field(default_factory=dict)
    post_table: PostTable = field(default_factory=PostTable)


class World:
    """Mutable registry of everything a scenario contains.

    Parameters
    ----------
    seed
        Scenario seed; every random stream is derived from it by name.
    start, end
        Scenario time span, epoch seconds.
    """

    def __init__(self, seed: int, start: float, end: float) -> None:
        self.seed = seed
        self.start = start
        self.end = end
        self.ids = IdFactory(seed)
        self.accounts: dict[str, Account] = {}
        self.posts: dict[str, Post] = {}
        self.actions: list[Action] = []
        self.updates: list[AccountUpdate] = []
        self.organic = OrganicIndex()
        self.attack_accounts: set[str] = set()

    @property
    def hours(self) -> float:
        """Length of the scenario in hours."""
        return (self.end - self.start) / SECONDS_PER_HOUR

    def rng(self, name: str) -> np.random.Generator:
        """Return a random generator for the component ``name``, independent of the others."""
        return np.random.default_rng([self.seed, stable_hash(name)])

    def add_account(self, account: Account) -> Account:
        """Register ``account`` (an id may be registered only once)."""
        if account.account_id in self.accounts:
            raise ValueError(f"account {account.account_id} registered twice")
        self.accounts[account.account_id] = account
        return account

    def add_post(self, post: Post) -> Post:
        """Register ``post`` (an id may be registered only once)."""
        if post.post_id in self.posts:
            raise ValueError(f"post {post.post_id} registered twice")
        self.posts[post.post_id] = post
        return post

    def act(
        self,
        ts: float,
        kind: ActionKind,
        actor_id: str,
        post_id: str,
        dwell_ms: int,
        organic: bool,
        device_id: str | None = None,
    ) -> Action:
        """Record a like or unlike; the device defaults to the actor's usual device."""
        device = device_id if device_id is not None else self.accounts[actor_id].device_id
        action = Action(round(ts, 3), kind, actor_id, post_id, int(dwell_ms), device, organic)
        self.actions.append(action)
        return action
