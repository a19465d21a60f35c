"""Read a generated scenario back and check it: contract format and like/unlike consistency.

Used by the tests and handy for anyone evaluating against a scenario: :func:`load_scenario`
returns the events and the truth; the ``*_problems`` functions return human-readable findings
(an empty list when all is well).
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.limits import MAX_TS, MIN_TS
from stream.simulate.scenario import CAPTURE_FILE, TRUTH_FILE

Event = dict[str, Any]


@dataclass
class LoadedScenario:
    """A scenario folder read back: raw bytes and parsed contents."""

    out: Path
    capture_bytes: bytes
    truth_bytes: bytes
    events: list[Event]
    truth: dict[str, Any]


def load_scenario(out: Path) -> LoadedScenario:
    """Read ``capture.jsonl.gz`` and ``truth.json`` from the folder ``out``."""
    capture_bytes = (out / CAPTURE_FILE).read_bytes()
    truth_bytes = (out / TRUTH_FILE).read_bytes()
    lines = gzip.decompress(capture_bytes).decode("utf-8").splitlines()
    return LoadedScenario(
        out,
        capture_bytes,
        truth_bytes,
        [json.loads(line) for line in lines],
        json.loads(truth_bytes),
    )


REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "like": {
        "event_id": str,
        "type": str,
        "ts": (int, float),
        "actor_id": str,
        "post_id": str,
        "author_id": str,
    },
    "account": {
        "event_id": str,
        "type": str,
        "ts": (int, float),
        "account_id": str,
        "created_at": (int, float),
    },
    "post": {"event_id": str, "type": str, "ts": (int, float), "post_id": str, "author_id": str},
}
REQUIRED["unlike"] = REQUIRED["like"]
OPTIONAL: dict[str, dict[str, type | tuple[type, ...]]] = {
    "like": {"actor_created_at": (int, float), "dwell_ms": int, "device_id": str},
    "unlike": {"actor_created_at": (int, float), "device_id": str},
    "account": {"followers": int, "following": int, "posts": int},
    "post": {"created_at": (int, float), "views": int, "completions": int},
}
TIME_FIELDS = ("ts", "created_at", "actor_created_at")


def contract_problems(event: Event) -> list[str]:
    """Everything wrong with one event against the contract in DESIGN.md (empty if fine).

    Stricter than the contract on purpose: fields the generator does not write are reported
    as unexpected.
    """
    kind = event.get("type")
    if kind not in REQUIRED:
        return [f"unknown type {kind!r}"]
    allowed = {**REQUIRED[kind], **OPTIONAL[kind]}
    problems = [f"missing {name}" for name in REQUIRED[kind] if name not in event]
    for name, value in event.items():
        expected = allowed.get(name)
        problem = (
            f"unexpected field {name}"
            if expected is None
            else _value_problem(name, value, expected)
        )
        if problem:
            problems.append(problem)
    if kind == "post" and event.get("completions", 0) > event.get("views", 0):
        problems.append("more completions than views")
    return problems


def _value_problem(name: str, value: Any, expected: type | tuple[type, ...]) -> str | None:
    """What is wrong with one field value, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, expected):
        return f"{name} has type {type(value).__name__}"
    if isinstance(value, str):
        return f"{name} is blank" if not value.strip() else None
    if not isinstance(value, int | float):
        return None
    number = float(value)
    if name in TIME_FIELDS and not MIN_TS <= number < MAX_TS:
        return f"{name} out of range: {value}"
    if number < 0:
        return f"{name} is negative"
    return None


def like_state_problems(events: list[Event]) -> list[str]:
    """Likes and unlikes of each (actor, post) must alternate, starting with a like."""
    liked: dict[tuple[str, str], bool] = {}
    problems = []
    for event in events:
        if event["type"] not in ("like", "unlike"):
            continue
        pair = (event["actor_id"], event["post_id"])
        now_liked = event["type"] == "like"
        if liked.get(pair, False) == now_liked:
            problems.append(f"{event['event_id']}: {event['type']} repeats state of {pair}")
        liked[pair] = now_liked
    return problems


def actions_by_actor(events: list[Event]) -> dict[str, list[Event]]:
    """Likes and unlikes grouped by actor, in capture order."""
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        if event["type"] in ("like", "unlike"):
            grouped[event["actor_id"]].append(event)
    return grouped


def account_snapshots(events: list[Event]) -> dict[str, list[Event]]:
    """Account snapshots grouped by account, in capture order."""
    grouped: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        if event["type"] == "account":
            grouped[event["account_id"]].append(event)
    return grouped


def last_post_snapshots(events: list[Event]) -> dict[str, Event]:
    """The newest snapshot of every post."""
    return {event["post_id"]: event for event in events if event["type"] == "post"}


def like_counts(events: list[Event]) -> dict[str, int]:
    """Number of likes per post (unlikes not subtracted)."""
    counts: dict[str, int] = defaultdict(int)
    for event in events:
        if event["type"] == "like":
            counts[event["post_id"]] += 1
    return counts
