"""Typed records for the event and alert contract (see ``*.schema.json`` beside this file).

The JSON Schema files are the contract other tools read; these frozen dataclasses are what the
code passes around. :mod:`schemas.validate` turns raw bytes into these records, and the tests
check that the two agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

LikeType = Literal["like", "unlike"]
SubjectKind = Literal["account", "post", "group"]
Severity = Literal["low", "medium", "high"]

SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high")
DETECTORS: tuple[str, ...] = ("burst", "new_account_spike", "fan_imbalance", "swarm", "churn")


@dataclass(frozen=True, slots=True)
class LikeEvent:
    """A like or an unlike: ``actor_id`` pressed the button on ``post_id`` by ``author_id``."""

    event_id: str
    type: LikeType
    actor_id: str
    post_id: str
    author_id: str
    ts: float
    actor_created_at: float | None = None
    device_id: str | None = None
    ip: str | None = None
    dwell_ms: int | None = None


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """The state of an account at ``ts``; the newest snapshot per account wins."""

    event_id: str
    account_id: str
    ts: float
    created_at: float
    followers: int | None = None
    following: int | None = None
    posts: int | None = None
    type: Literal["account"] = "account"


@dataclass(frozen=True, slots=True)
class PostSnapshot:
    """The state of a post at ``ts`` (views and completions, when the platform reports them)."""

    event_id: str
    post_id: str
    author_id: str
    ts: float
    created_at: float | None = None
    views: int | None = None
    completions: int | None = None
    type: Literal["post"] = "post"


Event = LikeEvent | AccountSnapshot | PostSnapshot


@dataclass(frozen=True, slots=True)
class Alert:
    """One finding, as published on the ``alerts`` topic and written by ``likeguard replay``."""

    alert_id: str
    detector: str
    subject_kind: SubjectKind
    subject_id: str
    accounts: tuple[str, ...]
    score: float
    severity: Severity
    event_time: float
    window_start: float
    window_end: float
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON object (``window`` nested, ``accounts`` as a list)."""
        return {
            "alert_id": self.alert_id,
            "detector": self.detector,
            "subject_kind": self.subject_kind,
            "subject_id": self.subject_id,
            "accounts": list(self.accounts),
            "score": self.score,
            "severity": self.severity,
            "event_time": self.event_time,
            "window": {"start": self.window_start, "end": self.window_end},
            "evidence": self.evidence,
        }

    def to_json(self) -> str:
        """One line of compact, key-sorted JSON: byte-identical for identical alerts."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Alert:
        """Inverse of :meth:`to_dict` (no validation: use on trusted, self-produced data)."""
        window = obj["window"]
        return cls(
            alert_id=obj["alert_id"],
            detector=obj["detector"],
            subject_kind=obj["subject_kind"],
            subject_id=obj["subject_id"],
            accounts=tuple(obj["accounts"]),
            score=float(obj["score"]),
            severity=obj["severity"],
            event_time=float(obj["event_time"]),
            window_start=float(window["start"]),
            window_end=float(window["end"]),
            evidence=dict(obj.get("evidence", {})),
        )
