"""Alert hygiene: deterministic ids, one alert per finding (cool-down), severity from score."""

from __future__ import annotations

import hashlib
import json
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

    The cool-down record lives in Redis, so it holds across workers and restarts. Every
    admitted alert is also kept in an outbox under the id of the event that triggered it;
    :meth:`redelivered` returns those alerts for events seen again, so a crash between storing
    the cool-down and publishing the alert re-emits the very same alert (downstream
    deduplicates by ``alert_id``) instead of losing it.
    """

    def __init__(self, state: RedisState, config: AlertsConfig) -> None:
        self.state = state
        self.config = config

    def admit(self, findings: Sequence[Finding]) -> list[Alert]:
        if not findings:
            return []
        # Every finding goes to the script in order, which judges each against the cool-down
        # the ones before it left: the verdicts do not depend on where a batch ends (a later
        # finding on the same subject past its cool-down is admitted in one batch as in two).
        # The same alert twice (same id) is judged once.
        firsts: dict[str, tuple[Finding, Alert]] = {}
        for finding in findings:
            a_id = alert_id(finding)
            if a_id not in firsts:
                firsts[a_id] = (finding, _to_alert(finding, a_id, self.config))
        candidates = list(firsts.values())
        longest = max((self._cooldown(f) for f, _ in candidates), default=0)
        args: list[str | float] = [self.state.namespace, int(longest * 2 + 86400)]
        for finding, alert in candidates:
            args += [
                finding.detector,
                finding.subject_id,
                alert.alert_id,
                repr(finding.event_time),
                self._cooldown(finding),
                finding.outbox_event_id or finding.trigger_event_id,
                alert.to_json(),
            ]
        verdicts = self.state.run_script("cooldown", args)
        return [alert for (_, alert), ok in zip(candidates, verdicts, strict=True) if int(ok)]

    def _cooldown(self, finding: Finding) -> float:
        """The finding's own cool-down (0: none), else the configured one."""
        own = finding.cooldown_seconds
        return self.config.cooldown_seconds if own is None else own

    def redelivered(self, event_ids: Sequence[str]) -> list[Alert]:
        """Alerts previously triggered by these (redelivered) events, from the outbox."""
        if not event_ids:
            return []
        with self.state.timed("outbox_read"):
            pipe = self.state.client.pipeline(transaction=False)
            for event_id in event_ids:
                pipe.hvals(self.state.key("outbox", event_id))
            stored: list[list[bytes]] = pipe.execute()
        alerts = [Alert.from_dict(json.loads(blob)) for blobs in stored for blob in blobs]
        return sorted(alerts, key=lambda a: (a.event_time, a.alert_id))


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
