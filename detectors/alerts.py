"""Alert hygiene: deterministic ids, one alert per finding (cool-down), severity from score."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from detectors.base import Finding
from detectors.config import AlertsConfig
from detectors.state import RedisState
from schemas.records import Alert, Severity


def alert_id(finding: Finding) -> str:
    """A stable id: the same finding on the same input always gets the same id.

    >>> f = Finding("burst", "account", "a1", ("a1",), 1.5, 10.0, 0.0, 10.0, "e-9")
    >>> alert_id(f) == alert_id(f), len(alert_id(f))
    (True, 24)
    """
    text = "\x1f".join(
        (finding.detector, finding.subject_kind, finding.subject_id, finding.trigger_event_id)
    )
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def severity_of(score: float, config: AlertsConfig) -> Severity:
    """``high`` from ``config.high_score``, ``medium`` from ``medium_score``, else ``low``."""
    if score >= config.high_score:
        return "high"
    if score >= config.medium_score:
        return "medium"
    return "low"


class AlertGate:
    """Turns findings into alerts, letting one through per (detector, subject) per cool-down.

    The cool-down record lives in Redis, so it holds across workers and restarts. A finding
    whose alert id is already recorded passes again: after a crash between storing the
    cool-down and publishing the alert, the redelivered event re-emits the very same alert
    (downstream deduplicates by ``alert_id``) instead of losing it.
    """

    def __init__(self, state: RedisState, config: AlertsConfig) -> None:
        self.state = state
        self.config = config

    def admit(self, findings: Sequence[Finding]) -> list[Alert]:
        if not findings:
            return []
        # Within a batch, keep the first finding per subject: later ones would be suppressed.
        firsts: dict[tuple[str, str], Finding] = {}
        for finding in findings:
            firsts.setdefault((finding.detector, finding.subject_id), finding)
        candidates = list(firsts.values())
        ids = [alert_id(f) for f in candidates]
        longest = max(
            (f.cooldown_seconds or self.config.cooldown_seconds for f in candidates), default=0
        )
        args: list[str | float] = [self.state.namespace, int(longest * 2 + 86400)]
        for finding, a_id in zip(candidates, ids, strict=True):
            cooldown = finding.cooldown_seconds or self.config.cooldown_seconds
            args += [finding.detector, finding.subject_id, a_id, repr(finding.event_time), cooldown]
        verdicts = self.state.run_script("cooldown", args)
        return [
            _to_alert(f, a_id, self.config)
            for f, a_id, ok in zip(candidates, ids, verdicts, strict=True)
            if int(ok)
        ]


def _to_alert(finding: Finding, a_id: str, config: AlertsConfig) -> Alert:
    score = round(finding.score, 4)
    return Alert(
        alert_id=a_id,
        detector=finding.detector,
        subject_kind=finding.subject_kind,
        subject_id=finding.subject_id,
        accounts=finding.accounts,
        score=score,
        severity=severity_of(score, config),
        event_time=finding.event_time,
        window_start=finding.window_start,
        window_end=finding.window_end,
        evidence=finding.evidence,
    )
