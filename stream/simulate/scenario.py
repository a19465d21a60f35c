"""Build a labelled scenario: organic traffic plus attacks, as contract events and truth.

:func:`generate` runs the organic model and the attack generators on one :class:`World`, then
turns it into events: likes and unlikes, an account snapshot for every account at (or before)
its first appearance, and post snapshots (views, completions) when a post is first seen and at
every hour boundary after an hour in which it got likes. :func:`write` stores them as
``capture.jsonl.gz`` (sorted by ``ts``, gzip with mtime 0, so the bytes depend only on the
seed and the arguments) and ``truth.json``.
"""

from __future__ import annotations

import gzip
import json
import math
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stream.simulate.attacks import ATTACK_KINDS, inject_attacks
from stream.simulate.organic import build_organic
from stream.simulate.sources import load_stream
from stream.simulate.world import SECONDS_PER_HOUR, Action, AttackRecord, Post, World

DEFAULT_START = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
ORGANIC_MODES: tuple[str, ...] = ("wikipedia", "bitcoin", "synthetic")
SNAPSHOT_INTERVAL_S = SECONDS_PER_HOUR
CAPTURE_FILE = "capture.jsonl.gz"
TRUTH_FILE = "truth.json"
WRITE_CHUNK = 20_000

PRIORITY_ACCOUNT = 0
PRIORITY_POST = 1
PRIORITY_ACTION = 2

Event = dict[str, Any]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ScenarioConfig:
    """Everything that determines a scenario; equal configs give byte-identical output."""

    seed: int = 1
    hours: float = 6.0
    start: float = DEFAULT_START
    organic: str = "wikipedia"
    data_dir: Path | None = None
    attacks: tuple[str, ...] = ATTACK_KINDS
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.hours <= 0:
            raise ValueError("hours must be positive")
        if self.scale <= 0:
            raise ValueError("scale must be positive")
        if self.organic not in ORGANIC_MODES:
            raise ValueError(f"organic must be one of {', '.join(ORGANIC_MODES)}")
        unknown = sorted(set(self.attacks) - set(ATTACK_KINDS))
        if unknown:
            raise ValueError(f"unknown attack kinds: {', '.join(unknown)}")


@dataclass
class Scenario:
    """A generated scenario: sorted events (with ids) and the truth document."""

    config: ScenarioConfig
    events: list[Event]
    truth: dict[str, Any]
    attacks: list[AttackRecord] = field(default_factory=list)
    seconds: float = 0.0


def generate(config: ScenarioConfig, progress: Progress | None = None) -> Scenario:
    """Generate the scenario described by ``config``.

    Parameters
    ----------
    config
        Seed, span, organic source and attacks.
    progress
        Called with a short message after each stage, for long runs.
    """
    began = time.perf_counter()
    report = progress or (lambda _message: None)
    world = World(config.seed, config.start, config.start + config.hours * SECONDS_PER_HOUR)
    stream = load_stream(config.organic, world, config.scale, config.data_dir)
    build_organic(world, stream, config.scale)
    report(f"organic: {len(world.actions):,} likes and unlikes, {len(world.accounts):,} accounts")
    attacks = inject_attacks(world, config.attacks)
    report(f"attacks: {len(attacks)} injected, {len(world.actions):,} actions in all")
    events = build_events(world)
    report(f"events: {len(events):,} sorted")
    truth = build_truth(world, config, attacks, events)
    return Scenario(config, events, truth, attacks, time.perf_counter() - began)


# ------------------------------------------------------------------------------- events


def like_event(world: World, action: Action) -> Event:
    """The contract record of a like or unlike (``event_id`` filled in after sorting)."""
    event: Event = {
        "event_id": "",
        "type": action.kind,
        "ts": action.ts,
        "actor_id": action.actor_id,
        "post_id": action.post_id,
        "author_id": world.posts[action.post_id].author_id,
        "actor_created_at": world.accounts[action.actor_id].created_at,
        "device_id": action.device_id,
    }
    if action.kind == "like":
        event["dwell_ms"] = action.dwell_ms
    return event


def post_snapshot_times(world: World, post: Post, like_times: list[float]) -> list[float]:
    """When to publish a post's counters: when first seen, then at each hour boundary that
    closes an hour in which the post got likes."""
    first_seen = post.created_at if post.created_at >= world.start else like_times[0]
    times = [first_seen]
    hours = math.ceil((world.end - world.start) / SNAPSHOT_INTERVAL_S - 1e-9)
    for hour in range(1, hours + 1):
        boundary = min(world.start + hour * SNAPSHOT_INTERVAL_S, world.end)
        opened = boundary - SNAPSHOT_INTERVAL_S
        if boundary > first_seen and bisect_left(like_times, boundary) > bisect_left(
            like_times, opened
        ):
            times.append(round(boundary, 3))
    return times


def post_counters(post: Post, organic_likes: int, bot_likes: int) -> tuple[int, int]:
    """Views and completions of ``post`` after the given numbers of likes."""
    organic_views = post.base_views + post.views_per_like * organic_likes
    bot_views = post.bot_views_per_like * bot_likes
    views = int(organic_views) + int(bot_views)
    completions = int(post.completion_rate * organic_views) + int(
        post.bot_completion_rate * bot_views
    )
    return views, min(views, completions)


def post_snapshots(world: World) -> list[tuple[float, Event]]:
    """Post snapshots for every post that got at least one like."""
    likes: dict[str, tuple[list[float], list[float]]] = {}
    for action in world.actions:
        if action.kind == "like":
            organic, bots = likes.setdefault(action.post_id, ([], []))
            (organic if action.organic else bots).append(action.ts)
    snapshots: list[tuple[float, Event]] = []
    for post_id, (organic, bots) in likes.items():
        post = world.posts[post_id]
        organic.sort()
        bots.sort()
        for at in post_snapshot_times(world, post, sorted(organic + bots)):
            views, completions = post_counters(
                post, bisect_left(organic, at), bisect_left(bots, at)
            )
            snapshots.append(
                (
                    at,
                    {
                        "event_id": "",
                        "type": "post",
                        "ts": at,
                        "post_id": post_id,
                        "author_id": post.author_id,
                        "created_at": post.created_at,
                        "views": views,
                        "completions": completions,
                    },
                )
            )
    return snapshots


def first_appearances(world: World, snapshots: Sequence[tuple[float, Event]]) -> dict[str, float]:
    """Event time at which each account first shows up (acting, or as a post's author)."""
    seen: dict[str, float] = {}
    for action in world.actions:
        for account_id in (action.actor_id, world.posts[action.post_id].author_id):
            if action.ts < seen.get(account_id, math.inf):
                seen[account_id] = action.ts
    for at, snapshot in snapshots:
        author = snapshot["author_id"]
        if at < seen.get(author, math.inf):
            seen[author] = at
    for update in world.updates:
        if update.ts < seen.get(update.account_id, math.inf):
            seen[update.account_id] = update.ts
    return seen


def account_snapshots(world: World, seen: dict[str, float]) -> list[tuple[float, Event]]:
    """One snapshot per account at its first appearance (or creation, if created in the
    scenario), then one per later counter change."""
    snapshots: list[tuple[float, Event]] = []
    for account_id in sorted(seen, key=lambda known: (seen[known], known)):
        account = world.accounts[account_id]
        at = account.created_at if account.created_at >= world.start else seen[account_id]
        at = min(at, seen[account_id])
        snapshots.append(
            (
                at,
                _account_event(
                    account_id,
                    at,
                    account.created_at,
                    account.followers,
                    account.following,
                    account.posts,
                ),
            )
        )
    for update in world.updates:
        account = world.accounts[update.account_id]
        snapshots.append(
            (
                update.ts,
                _account_event(
                    update.account_id,
                    update.ts,
                    account.created_at,
                    update.followers,
                    account.following,
                    account.posts,
                ),
            )
        )
    return snapshots


def _account_event(
    account_id: str, at: float, created_at: float, followers: int, following: int, posts: int
) -> Event:
    return {
        "event_id": "",
        "type": "account",
        "ts": at,
        "account_id": account_id,
        "created_at": created_at,
        "followers": followers,
        "following": following,
        "posts": posts,
    }


def build_events(world: World) -> list[Event]:
    """All events of the scenario in ``ts`` order, with ids ``e-<seed>-<n>``.

    Ties keep account snapshots before post snapshots before likes, then creation order.
    """
    posts = post_snapshots(world)
    accounts = account_snapshots(world, first_appearances(world, posts))
    actions = [(action.ts, like_event(world, action)) for action in world.actions]
    keyed: list[tuple[float, int, int, Event]] = []
    for priority, items in (
        (PRIORITY_ACCOUNT, accounts),
        (PRIORITY_POST, posts),
        (PRIORITY_ACTION, actions),
    ):
        keyed.extend((at, priority, serial, event) for serial, (at, event) in enumerate(items))
    keyed.sort(key=lambda item: (item[0], item[1], item[2]))
    events = [event for _at, _priority, _serial, event in keyed]
    for number, event in enumerate(events):
        event["event_id"] = f"e-{world.seed}-{number}"
    return events


# -------------------------------------------------------------------------------- truth


def build_truth(
    world: World, config: ScenarioConfig, attacks: list[AttackRecord], events: list[Event]
) -> dict[str, Any]:
    """The labels: attacks with their accounts and start times, and the organic accounts."""
    labelled = set(world.attack_accounts)
    present = {event["account_id"] for event in events if event["type"] == "account"}
    kinds = Counter(event["type"] for event in events)
    return {
        "seed": config.seed,
        "start": world.start,
        "end": world.end,
        "hours": config.hours,
        "organic": config.organic,
        "scale": config.scale,
        "attacks": [record.to_json() for record in attacks],
        "organic_accounts": sorted(present - labelled),
        "new_normal_accounts": sorted(world.organic.new_normal_accounts),
        "counts": {
            "events": len(events),
            **{kind: kinds.get(kind, 0) for kind in ("like", "unlike", "account", "post")},
            "accounts": len(present),
            "attack_accounts": len({a for record in attacks for a in record.accounts}),
        },
    }


# -------------------------------------------------------------------------------- write


def write(scenario: Scenario, out_dir: Path, progress: Progress | None = None) -> list[Path]:
    """Write ``capture.jsonl.gz`` and ``truth.json`` into ``out_dir`` (created if needed)."""
    report = progress or (lambda _message: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    capture = out_dir / CAPTURE_FILE
    total = len(scenario.events)
    with (
        capture.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as packed,
    ):
        for offset in range(0, total, WRITE_CHUNK):
            chunk = scenario.events[offset : offset + WRITE_CHUNK]
            lines = "".join(json.dumps(event, separators=(",", ":")) + "\n" for event in chunk)
            packed.write(lines.encode("utf-8"))
            if total > 10 * WRITE_CHUNK and (offset // WRITE_CHUNK) % 5 == 4:
                report(f"written {offset + len(chunk):,}/{total:,} events")
    truth = out_dir / TRUTH_FILE
    truth.write_text(json.dumps(scenario.truth, indent=2) + "\n", encoding="utf-8")
    return [capture, truth]


def summary(scenario: Scenario) -> str:
    """A few lines for standard error: volumes, accounts and attacks by kind."""
    counts = scenario.truth["counts"]
    by_kind = Counter(record.kind for record in scenario.attacks)
    config = scenario.config
    started = datetime.fromtimestamp(config.start, UTC).isoformat().replace("+00:00", "Z")
    lines = [
        f"simulate: {counts['events']:,} events ({counts['like']:,} likes, "
        f"{counts['unlike']:,} unlikes, {counts['account']:,} account and {counts['post']:,} "
        f"post snapshots) over {config.hours:g} h from {started}, seed {config.seed}, "
        f"organic {config.organic} x{config.scale:g}, in {scenario.seconds:.1f} s",
        f"simulate: {counts['accounts']:,} accounts, {counts['attack_accounts']:,} fraudulent, "
        f"{len(scenario.truth['new_normal_accounts'])} new but normal",
        "simulate: attacks: "
        + (
            ", ".join(f"{kind} {by_kind[kind]}" for kind in ATTACK_KINDS if by_kind[kind]) or "none"
        ),
    ]
    return "\n".join(lines)
