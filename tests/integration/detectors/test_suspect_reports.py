"""Suspect reports (detectors/suspects.lua): follow-ups name every suspect once, also late ones.

With several workers, another worker can write a suspect whose like time lies before where
the last report ended; the report must still name it, once, and never name a suspect twice
for the same like.
"""

from __future__ import annotations

import pytest

from detectors.accounts import ReportRequest, SuspectReports
from detectors.state import RedisState

pytestmark = pytest.mark.integration

SUBJECT = "p:post1"


def suspects(state: RedisState, **liked_at: float) -> None:
    """Write suspects as the detector's batch script does (liker -> latest like time)."""
    state.client.zadd(f"{state.namespace}:fi:sus:{SUBJECT}", liked_at, gt=True)


def named(reports: SuspectReports, state: RedisState, request: ReportRequest) -> list[str]:
    (report,) = reports.fetch(state, [request])
    return list(report.suspects)


def test_a_suspect_written_late_is_named_by_the_next_follow_up(state: RedisState) -> None:
    reports = SuspectReports("fi", report_every=600.0, ttl=3600, max_accounts=100)
    suspects(state, a=100.0, b=200.0)
    assert named(reports, state, ReportRequest(SUBJECT, 50.0, 250.0, True)) == ["a", "b"]
    # Another worker, behind in event time, writes c (liked at 150) after that report; d is new.
    suspects(state, c=150.0, d=400.0)
    follow_up = ReportRequest(SUBJECT, None, 900.0, False)
    assert named(reports, state, follow_up) == ["c", "d"]
    assert named(reports, state, ReportRequest(SUBJECT, None, 1500.0, False)) == []


def test_a_report_names_nobody_twice_for_the_same_like(state: RedisState) -> None:
    reports = SuspectReports("fi", report_every=600.0, ttl=3600, max_accounts=100)
    suspects(state, a=100.0, b=200.0)
    assert named(reports, state, ReportRequest(SUBJECT, 50.0, 250.0, True)) == ["a", "b"]
    suspects(state, e=300.0)
    assert named(reports, state, ReportRequest(SUBJECT, None, 900.0, False)) == ["e"]
    # a likes again: its latest like moves past the report's end, and it is named for it.
    suspects(state, a=1000.0)
    assert named(reports, state, ReportRequest(SUBJECT, None, 1500.0, False)) == ["a"]


def test_late_suspects_count_toward_the_cut_at_max_accounts(state: RedisState) -> None:
    reports = SuspectReports("fi", report_every=600.0, ttl=3600, max_accounts=2)
    suspects(state, a=100.0, b=200.0)
    assert named(reports, state, ReportRequest(SUBJECT, 50.0, 250.0, True)) == ["a", "b"]
    suspects(state, c=120.0, d=140.0, e=400.0)
    # Two late suspects fill the answer: the cursor stays, and e is named next.
    assert named(reports, state, ReportRequest(SUBJECT, None, 900.0, False)) == ["c", "d"]
    assert named(reports, state, ReportRequest(SUBJECT, None, 900.0, False)) == ["e"]
