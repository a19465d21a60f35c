"""The alert gate on real Redis: its verdicts do not depend on how findings are batched."""

from __future__ import annotations

import pytest

from detectors.alerts import AlertGate
from detectors.base import Finding
from detectors.config import load_config
from detectors.state import RedisState

pytestmark = pytest.mark.integration


def finding(event: str, at: float, subject: str = "g1") -> Finding:
    return Finding(
        "swarm", "group", subject, ("a", "b"), 1.5, at, at - 60, at, event, cooldown_seconds=10.0
    )


FINDINGS = [
    finding("e1", 100.0),
    finding("e2", 105.0),  # within the cool-down of e1: suppressed
    finding("e3", 111.0),  # past it: admitted
    finding("e3", 111.0),  # the same alert again: once
    finding("e4", 112.0, subject="g2"),
]


@pytest.mark.parametrize("cut", [None, 1, 2, 3])
def test_verdicts_are_the_same_in_one_batch_or_several(state: RedisState, cut: int | None) -> None:
    gate = AlertGate(state, load_config().alerts)
    calls = [FINDINGS] if cut is None else [FINDINGS[:cut], FINDINGS[cut:]]
    admitted = []
    for findings in calls:
        alerts = gate.admit(findings)
        assert len({a.alert_id for a in alerts}) == len(alerts)
        admitted += alerts
    # (A finding seen again in a later call is the same alert again: re-emitted, same id.)
    assert sorted({(a.subject_id, a.event_time) for a in admitted}) == [
        ("g1", 100.0),
        ("g1", 111.0),
        ("g2", 112.0),
    ]
