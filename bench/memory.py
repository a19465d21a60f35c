"""Redis memory per active account and per active post, from ``MEMORY USAGE`` of every key.

Keys are grouped by family (``w:actor_likes``, ``acct``, ``post``, …: the key without its last
part). A family counts towards accounts when most of its ids are account ids of the capture,
towards posts when most are post ids; anything else (per-author or global state) is shown on
its own. Per-account bytes are all account families' bytes over the distinct accounts active
in the capture, so a detector that adds a per-account key shows up here without a code change.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.stats import FamilyUsage, bytes_per_subject, usage_by_family


@dataclass
class ActiveIds:
    """Who and what the capture touches."""

    #: Every account that appears: actors, authors, account snapshots.
    accounts: set[str] = field(default_factory=set)
    #: Accounts that pressed like or unlike.
    actors: set[str] = field(default_factory=set)
    #: Every post that appears: liked, unliked or snapshotted.
    posts: set[str] = field(default_factory=set)


def active_ids(capture: Path) -> ActiveIds:
    ids = ActiveIds()
    with gzip.open(capture, "rb") as handle:
        for line in handle:
            event = json.loads(line)
            kind = event.get("type")
            if kind in ("like", "unlike"):
                ids.actors.add(event["actor_id"])
                ids.accounts.add(event["actor_id"])
                ids.accounts.add(event["author_id"])
                ids.posts.add(event["post_id"])
            elif kind == "account":
                ids.accounts.add(event["account_id"])
            elif kind == "post":
                ids.posts.add(event["post_id"])
                ids.accounts.add(event["author_id"])
    return ids


def key_sizes(client: redis.Redis, namespace: str, chunk: int = 500) -> list[tuple[str, int]]:
    """Every key of ``namespace`` with its ``MEMORY USAGE … SAMPLES 0`` (exact) in bytes."""
    keys = [k.decode() for k in client.scan_iter(match=f"{namespace}:*", count=1000)]
    sizes: list[tuple[str, int]] = []
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        pipe = client.pipeline(transaction=False)
        for key in part:
            pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
        for key, size in zip(part, pipe.execute(), strict=True):
            if size is not None:  # expired between SCAN and MEMORY USAGE
                sizes.append((key, int(size)))
    return sizes


@dataclass
class MemoryResult:
    active_accounts: int
    active_actors: int
    active_posts: int
    keys: int
    bytes: int
    bytes_per_account: float | None
    bytes_per_post: float | None
    families: list[dict[str, Any]]


def measure_memory(client: redis.Redis, namespace: str, ids: ActiveIds) -> MemoryResult:
    sizes = key_sizes(client, namespace)
    families = usage_by_family(sizes, namespace, ids.accounts, ids.posts)
    return MemoryResult(
        active_accounts=len(ids.accounts),
        active_actors=len(ids.actors),
        active_posts=len(ids.posts),
        keys=len(sizes),
        bytes=sum(size for _, size in sizes),
        bytes_per_account=bytes_per_subject(families, "account", len(ids.accounts)),
        bytes_per_post=bytes_per_subject(families, "post", len(ids.posts)),
        families=[_family_row(u) for u in sorted(families.values(), key=lambda u: -u.bytes)],
    )


def _family_row(usage: FamilyUsage) -> dict[str, Any]:
    return {
        "family": usage.family,
        "subject": usage.subject,
        "keys": usage.keys,
        "bytes": usage.bytes,
        "bytes_per_key": usage.bytes / usage.keys if usage.keys else 0.0,
    }
