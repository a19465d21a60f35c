"""Suspect reports (detectors/suspects.lua): follow-ups name every suspect once, also late ones,
and fall due on a grid of event times whatever batches the stream comes in.

With several workers, another worker can write a suspect whose like time lies before where
the last report ended; the report must still name it, once, and never name a suspect twice
for the same like.
"""

from __future__ import annotations

import math

import pytest

from detectors.accounts import Report, ReportRequest, SuspectReports
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


def stretches(reports: list[Report]) -> list[tuple[float, float, list[str]]]:
    return [(r.since, r.request.until, list(r.suspects)) for r in reports]


def test_follow_ups_fall_due_on_a_grid_whatever_batches_the_stream_comes_in(
    state: RedisState,
) -> None:
    reports = SuspectReports("fi", report_every=600.0, ttl=3600, max_accounts=100)
    suspects(state, a=100.0, b=700.0, c=1300.0)
    initial = reports.run(state, [ReportRequest(SUBJECT, 50.0, 250.0, True)], now=300.0)
    assert stretches(initial) == [(50.0, 250.0, ["a"])]
    assert reports.next_due == 850.0
    # One batch reaching 2000 runs both follow-ups due by then, each up to its due time.
    assert stretches(reports.run(state, [], now=2000.0)) == [
        (250.0, 850.0, ["b"]),
        (850.0, 1450.0, ["c"]),
    ]
    assert reports.next_due == 2050.0
    assert reports.run(state, [], now=2049.0) == []
    # Nothing new by 2050: the report ends there, and nothing is left queued.
    (last,) = reports.run(state, [], now=2100.0)
    assert last.ended and last.request.until == 2050.0
    assert reports.next_due == math.inf


def test_the_same_follow_ups_in_small_batches(state: RedisState) -> None:
    reports = SuspectReports("fi", report_every=600.0, ttl=3600, max_accounts=100)
    suspects(state, a=100.0, b=700.0, c=1300.0)
    reports.run(state, [ReportRequest(SUBJECT, 50.0, 250.0, True)], now=300.0)
    answered = [r for now in range(300, 2001, 97) for r in reports.run(state, [], float(now))]
    assert stretches(answered) == [(250.0, 850.0, ["b"]), (850.0, 1450.0, ["c"])]


def test_a_cut_answer_is_continued_up_to_the_same_due_time(state: RedisState) -> None:
    reports = SuspectReports("fi", report_every=600.0, ttl=3600, max_accounts=2)
    suspects(state, a=100.0, b=300.0, c=400.0, d=500.0)
    answered = reports.run(state, [ReportRequest(SUBJECT, 50.0, 250.0, True)], now=900.0)
    assert [(r.since, r.until, list(r.suspects)) for r in answered] == [
        (50.0, 250.0, ["a"]),
        (250.0, 400.0, ["b", "c"]),  # cut at max_accounts: the rest is due at once
        (400.0, 850.0, ["d"]),
    ]
    assert [r.request.until for r in answered] == [250.0, 850.0, 850.0]
    assert len({r.follow_up_id for r in answered}) == 3
    assert reports.next_due == 1450.0
