"""Scoring detections against a scenario's truth: pure logic, no Redis, no files.

A *method* (likeguard, one of its detectors, or a reference method) is reduced to its flags:
``{account_id: event time at which the account was first flagged}``. Everything here is a
function of flags and :class:`Truth`.

Definitions (issue 3)
---------------------
* **Positives** are the ``accounts`` of the truth attacks. An account is predicted positive
  when it is flagged (for likeguard: it appears in any alert's ``accounts``).
* **Beneficiaries** (authors who bought engagement) that are not themselves attack accounts
  are *neutral*: the alert contract asks detectors to name "an author buying likes" too, so
  flagging one is no false positive, but the truth does not list them as attackers either, so
  it is no true positive. They are counted apart (``neutral``) and left out of precision.
* **Precision** is ``tp / (tp + fp)`` over the flagged accounts that are not neutral; a
  flagged account of any attack kind is a true positive (per-detector precision asks "is
  what this detector flags fraud?", not "is it the fraud it was built for?").
* **Recall per kind** is computed from a method's flags against the union of the accounts
  of that kind's attacks, whichever detector raised the flag.
* **Detection delay** of an attack is the first flag time over its accounts minus the
  attack's ``start``, in event-time seconds, never below 0 (an account flagged before the
  attack began counts as caught at once). An attack none of whose accounts is flagged is
  *missed* and has no delay; medians and p90s are over the detected attacks.
* **Organic false-positive share** is flagged organic accounts over all organic accounts
  (truth ``organic_accounts`` together with ``new_normal_accounts``).

Scores keep raw counts, so scores of several scenarios add up (:func:`merge_scores`) into a
micro-average: pooled accounts, pooled attacks.

Examples
--------
>>> truth = Truth.from_json({
...     "attacks": [
...         {"kind": "burst", "attack_id": "burst-1", "accounts": ["b1"],
...          "beneficiaries": ["author"], "start": 100.0, "end": 200.0},
...         {"kind": "swarm", "attack_id": "swarm-1", "accounts": ["s1", "s2"],
...          "beneficiaries": [], "start": 50.0, "end": 300.0},
...     ],
...     "organic_accounts": ["o1", "o2", "o3", "o4"],
...     "new_normal_accounts": ["n1"],
... })
>>> score = score_flags({"b1": 130.0, "s1": 400.0, "author": 131.0, "o1": 10.0}, truth)
>>> score.overall.tp, score.overall.fp, score.overall.fn, score.overall.neutral
(2, 1, 1, 1)
>>> round(score.overall.f1, 3), score.organic_fp_share
(0.667, 0.2)
>>> score.kinds["swarm"].recall, score.kinds["swarm"].delays
(0.5, [350.0])

"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "KIND_DETECTOR",
    "Attack",
    "AttackDelay",
    "Confusion",
    "DetectorScore",
    "KindScore",
    "MethodScore",
    "Target",
    "Truth",
    "check_targets",
    "flags_from_alerts",
    "merge_detector_scores",
    "merge_scores",
    "quantile",
    "score_detectors",
    "score_flags",
]

#: The detector expected to catch each attack kind (a like-for-like ring is a swarm).
KIND_DETECTOR: dict[str, str] = {
    "burst": "burst",
    "new_account_spike": "new_account_spike",
    "fan_imbalance": "fan_imbalance",
    "swarm": "swarm",
    "ring": "swarm",
    "churn": "churn",
}

Flags = Mapping[str, float]


# ----------------------------------------------------------------------------------- truth


@dataclass(frozen=True, slots=True)
class Attack:
    """One labelled attack: its kind, its fraudulent accounts and when it started."""

    kind: str
    attack_id: str
    accounts: frozenset[str]
    beneficiaries: frozenset[str]
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Truth:
    """The labels of a scenario (``truth.json`` of ``likeguard simulate``)."""

    attacks: tuple[Attack, ...]
    organic: frozenset[str]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Truth:
        """Build from the parsed ``truth.json``; unknown fields are ignored."""
        attacks = tuple(
            Attack(
                kind=str(a["kind"]),
                attack_id=str(a["attack_id"]),
                accounts=frozenset(a["accounts"]),
                beneficiaries=frozenset(a.get("beneficiaries", ())),
                start=float(a["start"]),
                end=float(a.get("end", a["start"])),
            )
            for a in doc.get("attacks", ())
        )
        organic = frozenset(doc.get("organic_accounts", ())) | frozenset(
            doc.get("new_normal_accounts", ())
        )
        return cls(attacks, organic)

    @property
    def positives(self) -> frozenset[str]:
        """Every attack account."""
        return frozenset().union(*(a.accounts for a in self.attacks))

    @property
    def neutral(self) -> frozenset[str]:
        """Beneficiaries that are not themselves attack accounts."""
        return frozenset().union(*(a.beneficiaries for a in self.attacks)) - self.positives

    @property
    def kinds(self) -> list[str]:
        """Attack kinds present, in the order of :data:`KIND_DETECTOR`, then any others."""
        present = {a.kind for a in self.attacks}
        known = [k for k in KIND_DETECTOR if k in present]
        return known + sorted(present - set(known))

    def accounts_of(self, kind: str) -> frozenset[str]:
        """The union of the accounts of ``kind``'s attacks."""
        return frozenset().union(*(a.accounts for a in self.attacks if a.kind == kind))


# ---------------------------------------------------------------------------------- scores


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile with linear interpolation (numpy's default); ``None`` when empty.

    Examples
    --------
    >>> quantile([10.0, 20.0, 30.0, 40.0], 0.5), quantile([10.0, 20.0, 30.0, 40.0], 0.9)
    (25.0, 37.0)
    >>> quantile([], 0.5) is None
    True

    """
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(slots=True)
class Confusion:
    """Per-account counts: true and false positives, false negatives, neutral flags."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    neutral: int = 0

    @property
    def flagged(self) -> int:
        return self.tp + self.fp + self.neutral

    @property
    def precision(self) -> float | None:
        """``tp / (tp + fp)``; ``None`` when nothing (non-neutral) is flagged."""
        judged = self.tp + self.fp
        return self.tp / judged if judged else None

    @property
    def recall(self) -> float | None:
        """``tp / (tp + fn)``; ``None`` when there are no positives."""
        positives = self.tp + self.fn
        return self.tp / positives if positives else None

    @property
    def f1(self) -> float | None:
        """Harmonic mean of precision and recall; 0 when positives exist and none is caught."""
        p, r = self.precision, self.recall
        if r is None:
            return None
        if p is None or p + r == 0:
            return 0.0
        return 2 * p * r / (p + r)

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.neutral + other.neutral
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "neutral": self.neutral,
            "flagged": self.flagged,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


@dataclass(frozen=True, slots=True)
class AttackDelay:
    """When one attack was first caught; ``delay`` is ``None`` for a missed attack."""

    kind: str
    attack_id: str
    start: float
    detected_at: float | None

    @property
    def delay(self) -> float | None:
        if self.detected_at is None:
            return None
        return max(0.0, self.detected_at - self.start)


@dataclass(slots=True)
class KindScore:
    """Recall and detection delay of one attack kind."""

    positives: int = 0
    caught: int = 0
    attacks: list[AttackDelay] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.caught / self.positives if self.positives else None

    @property
    def detected(self) -> int:
        return sum(1 for a in self.attacks if a.detected_at is not None)

    @property
    def delays(self) -> list[float]:
        return [a.delay for a in self.attacks if a.delay is not None]

    @property
    def median_delay(self) -> float | None:
        return quantile(self.delays, 0.5)

    @property
    def p90_delay(self) -> float | None:
        return quantile(self.delays, 0.9)

    def __add__(self, other: KindScore) -> KindScore:
        return KindScore(
            self.positives + other.positives,
            self.caught + other.caught,
            [*self.attacks, *other.attacks],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "accounts": self.positives,
            "caught": self.caught,
            "recall": self.recall,
            "attacks": len(self.attacks),
            "detected_attacks": self.detected,
            "median_delay_s": self.median_delay,
            "p90_delay_s": self.p90_delay,
            "per_attack": [
                {
                    "attack_id": a.attack_id,
                    "start": a.start,
                    "detected_at": a.detected_at,
                    "delay_s": a.delay,
                }
                for a in self.attacks
            ],
        }


@dataclass(slots=True)
class MethodScore:
    """Everything measured for one method on one scenario (or several, merged)."""

    overall: Confusion
    kinds: dict[str, KindScore]
    organic_flagged: int
    organic_total: int

    @property
    def organic_fp_share(self) -> float | None:
        return self.organic_flagged / self.organic_total if self.organic_total else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict(),
            "kinds": {kind: score.to_dict() for kind, score in self.kinds.items()},
            "organic_flagged": self.organic_flagged,
            "organic_total": self.organic_total,
            "organic_fp_share": self.organic_fp_share,
        }


def confusion(flagged: Iterable[str], truth: Truth) -> Confusion:
    """Per-account confusion counts of a flagged set against all attack accounts."""
    flagged = set(flagged)
    positives, neutral = truth.positives, truth.neutral
    tp = len(flagged & positives)
    n_neutral = len((flagged - positives) & neutral)
    return Confusion(
        tp=tp, fp=len(flagged) - tp - n_neutral, fn=len(positives) - tp, neutral=n_neutral
    )


def score_flags(flags: Flags, truth: Truth) -> MethodScore:
    """Score one method's flags (account -> first flag time) against ``truth``."""
    kinds: dict[str, KindScore] = {}
    for kind in truth.kinds:
        accounts = truth.accounts_of(kind)
        score = KindScore(positives=len(accounts), caught=sum(1 for a in accounts if a in flags))
        for attack in truth.attacks:
            if attack.kind != kind:
                continue
            times = [flags[a] for a in attack.accounts if a in flags]
            score.attacks.append(
                AttackDelay(kind, attack.attack_id, attack.start, min(times) if times else None)
            )
        kinds[kind] = score
    return MethodScore(
        overall=confusion(flags, truth),
        kinds=kinds,
        organic_flagged=sum(1 for a in truth.organic if a in flags),
        organic_total=len(truth.organic),
    )


# ------------------------------------------------------------------------------- detectors


@dataclass(slots=True)
class DetectorScore:
    """One detector's own alerts: precision, and recall on the kinds it is expected to catch."""

    alerts: int
    confusion: Confusion
    own_kinds: tuple[str, ...]
    own_positives: int
    own_caught: int

    @property
    def own_recall(self) -> float | None:
        return self.own_caught / self.own_positives if self.own_positives else None

    def __add__(self, other: DetectorScore) -> DetectorScore:
        return DetectorScore(
            self.alerts + other.alerts,
            self.confusion + other.confusion,
            tuple(dict.fromkeys((*self.own_kinds, *other.own_kinds))),
            self.own_positives + other.own_positives,
            self.own_caught + other.own_caught,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "alerts": self.alerts,
            **self.confusion.to_dict(),
            "own_kinds": list(self.own_kinds),
            "own_accounts": self.own_positives,
            "own_caught": self.own_caught,
            "own_recall": self.own_recall,
        }


def flags_from_alerts(alerts: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per detector, every account its alerts name and the earliest alert time naming it.

    Parameters
    ----------
    alerts
        Alert dicts of the contract (``detector``, ``accounts``, ``event_time``).

    Examples
    --------
    >>> flags_from_alerts([
    ...     {"detector": "burst", "accounts": ["a"], "event_time": 20.0},
    ...     {"detector": "burst", "accounts": ["a", "b"], "event_time": 10.0},
    ...     {"detector": "swarm", "accounts": ["c"], "event_time": 5.0},
    ... ])
    {'burst': {'a': 10.0, 'b': 10.0}, 'swarm': {'c': 5.0}}

    """
    out: dict[str, dict[str, float]] = {}
    for alert in alerts:
        flags = out.setdefault(str(alert["detector"]), {})
        at = float(alert["event_time"])
        for account in alert["accounts"]:
            if at < flags.get(account, math.inf):
                flags[account] = at
    return out


def union_flags(by_detector: Mapping[str, Flags]) -> dict[str, float]:
    """Earliest flag time of each account over all detectors."""
    out: dict[str, float] = {}
    for flags in by_detector.values():
        for account, at in flags.items():
            if at < out.get(account, math.inf):
                out[account] = at
    return out


def score_detectors(
    by_detector: Mapping[str, Flags], truth: Truth, alert_counts: Mapping[str, int]
) -> dict[str, DetectorScore]:
    """Score each detector on its own alerts; every expected detector appears, alerts or not."""
    names = list(dict.fromkeys([*KIND_DETECTOR.values(), *sorted(by_detector)]))
    out: dict[str, DetectorScore] = {}
    for name in names:
        flags = by_detector.get(name, {})
        own_kinds = tuple(k for k in truth.kinds if KIND_DETECTOR.get(k) == name)
        own = frozenset().union(*(truth.accounts_of(k) for k in own_kinds))
        out[name] = DetectorScore(
            alerts=int(alert_counts.get(name, 0)),
            confusion=confusion(flags, truth),
            own_kinds=own_kinds,
            own_positives=len(own),
            own_caught=sum(1 for a in own if a in flags),
        )
    return out


# --------------------------------------------------------------------------------- merging


def merge_scores(scores: Sequence[MethodScore]) -> MethodScore:
    """Pool several scenarios' scores of one method (micro-average)."""
    overall = Confusion()
    kinds: dict[str, KindScore] = {}
    organic_flagged = organic_total = 0
    for score in scores:
        overall = overall + score.overall
        for kind, kind_score in score.kinds.items():
            kinds[kind] = kinds.get(kind, KindScore()) + kind_score
        organic_flagged += score.organic_flagged
        organic_total += score.organic_total
    order = [k for k in KIND_DETECTOR if k in kinds] + sorted(set(kinds) - set(KIND_DETECTOR))
    return MethodScore(overall, {k: kinds[k] for k in order}, organic_flagged, organic_total)


def merge_detector_scores(
    scores: Sequence[Mapping[str, DetectorScore]],
) -> dict[str, DetectorScore]:
    """Pool several scenarios' per-detector scores."""
    out: dict[str, DetectorScore] = {}
    for by_detector in scores:
        for name, score in by_detector.items():
            out[name] = out[name] + score if name in out else score
    return out


# --------------------------------------------------------------------------------- targets

F1_TARGET = 0.9
RECALL_TARGET = 0.8
ORGANIC_FP_TARGET = 0.001
DELAY_TARGET_S = 300.0
DELAY_KINDS = ("burst", "swarm")


@dataclass(frozen=True, slots=True)
class Target:
    """One target of issue 3 and whether it is met (``passed`` is ``None`` when not measurable:
    the scenario has no attack of that kind)."""

    name: str
    value: float | None
    goal: str
    passed: bool | None

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "goal": self.goal, "verdict": self.verdict}


def check_targets(likeguard: MethodScore, references: Mapping[str, MethodScore]) -> list[Target]:
    """The targets of issue 3, judged on ``likeguard``'s score.

    * overall per-account F1 >= 0.9;
    * recall >= 0.8 for every attack kind present;
    * at most 0.1 % of organic accounts flagged;
    * median detection delay < 300 s for bursts and swarms (farms); a kind present but
      never detected fails;
    * F1 above every reference method's.

    Examples
    --------
    >>> good = MethodScore(Confusion(tp=95, fp=2, fn=5), {}, 0, 10_000)
    >>> weak = MethodScore(Confusion(tp=50, fp=50, fn=50), {}, 30, 10_000)
    >>> for t in check_targets(good, {"threshold": weak}):
    ...     print(f"{t.name:20} {t.verdict}")
    overall F1           PASS
    organic FP share     PASS
    median delay burst   n/a
    median delay swarm   n/a
    F1 above threshold   PASS

    (no attack kinds in these scores, so no recall targets and no delays to judge)

    """
    f1 = likeguard.overall.f1
    targets = [
        Target("overall F1", f1, f">= {F1_TARGET:g}", None if f1 is None else f1 >= F1_TARGET)
    ]
    for kind, score in likeguard.kinds.items():
        recall = score.recall
        targets.append(
            Target(
                f"recall {kind}",
                recall,
                f">= {RECALL_TARGET:g}",
                None if recall is None else recall >= RECALL_TARGET,
            )
        )
    share = likeguard.organic_fp_share
    targets.append(
        Target(
            "organic FP share",
            share,
            f"<= {ORGANIC_FP_TARGET:.1%}",
            None if share is None else share <= ORGANIC_FP_TARGET,
        )
    )
    for kind in DELAY_KINDS:
        if kind not in likeguard.kinds:
            targets.append(Target(f"median delay {kind}", None, f"< {DELAY_TARGET_S:g} s", None))
            continue
        median = likeguard.kinds[kind].median_delay
        targets.append(
            Target(
                f"median delay {kind}",
                median,
                f"< {DELAY_TARGET_S:g} s",
                median is not None and median < DELAY_TARGET_S,
            )
        )
    for name, reference in references.items():
        theirs = reference.overall.f1 or 0.0  # a reference that finds nothing scores 0
        passed = None if f1 is None else f1 > theirs
        targets.append(Target(f"F1 above {name}", f1, f"> {theirs:.3f}", passed))
    return targets
