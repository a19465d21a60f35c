"""Pure arithmetic of the benchmark: percentiles, throughput spans, metrics text, key families."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bench.stats import (
    FamilyUsage,
    Sample,
    by_label,
    bytes_per_subject,
    classify_key,
    parse_prometheus,
    percentile,
    rate,
    ratio,
    throughput_span,
    usage_by_family,
)


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 100])
@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
def test_percentile_agrees_with_numpy(q: float, n: int) -> None:
    values = [random.Random(n * 31 + i).gauss(1.0, 0.3) for i in range(n)]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_does_not_depend_on_input_order() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0
    assert values == [5.0, 1.0, 4.0, 2.0, 3.0]  # not sorted in place


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_rate_and_ratio_never_divide_by_zero() -> None:
    assert rate(10, 0) == 0.0
    assert rate(10, 4) == 2.5
    assert ratio(1, 0) is None
    assert ratio(None, 2) is None
    assert ratio(3, None) is None
    assert ratio(3, 4) == 0.75


def test_span_leaves_out_the_first_batch() -> None:
    # First round: 1,000 events done at t=100 (after a join we must not count).
    span = throughput_span([Sample(1000, 100.0)], [Sample(11000, 102.0)])
    assert span.events == 10000
    assert span.seconds == 2.0
    assert span.per_second == 5000


def test_span_of_two_workers_counts_both_and_spans_first_to_last() -> None:
    first = [Sample(500, 100.0), Sample(0, 0.0)]  # the second had not started yet
    last = [Sample(4500, 104.0), Sample(3000, 103.0)]
    span = throughput_span(first, last)
    assert span.events == 7000
    assert span.seconds == 4.0


def test_span_needs_a_started_worker() -> None:
    with pytest.raises(ValueError):
        throughput_span([Sample(0, 0.0)], [Sample(10, 1.0)])


EXPOSITION = """\
# HELP likeguard_events_total Events consumed, by type and outcome.
# TYPE likeguard_events_total counter
likeguard_events_total{outcome="accepted",type="like"} 1200.0
likeguard_events_total{outcome="accepted",type="account"} 300.0
likeguard_events_created{outcome="accepted",type="like"} 1.795e+09
likeguard_last_processed_timestamp_seconds 1.7953146e+09
likeguard_redis_call_duration_seconds_sum{operation="windows"} 1.5
likeguard_redis_call_duration_seconds_sum{operation="cooldown"} 0.25
likeguard_redis_call_duration_seconds_sum{operation="windows",extra="x"} 0.5
"""


def test_parse_prometheus_sums_over_labels_by_name() -> None:
    values = parse_prometheus(EXPOSITION)
    assert values["likeguard_events_total"] == 1500.0
    assert values["likeguard_last_processed_timestamp_seconds"] == 1.7953146e09
    assert "likeguard_events" not in values


def test_by_label_splits_one_metric_by_one_label() -> None:
    got = by_label(EXPOSITION, "likeguard_redis_call_duration_seconds_sum", "operation")
    assert got == {"windows": 2.0, "cooldown": 0.25}
    assert by_label(EXPOSITION, "likeguard_events_total", "nope") == {}


ACCOUNTS = {"u1", "u2", "u3"}
POSTS = {"p1", "p2"}


@pytest.mark.parametrize(
    ("key", "family", "subject"),
    [
        ("ns:w:actor_likes:u1", "w:actor_likes", "account"),
        ("ns:acct:u2", "acct", "account"),
        ("ns:post:p1", "post", "post"),
        ("ns:w:likers_by_post:p2", "w:likers_by_post", "post"),
        ("ns:outbox:follow-up:p:p1:evt9", "outbox:follow-up:p", "post"),
        ("ns:outbox:evt9", "outbox", "other"),
        ("ns:models", "models", "other"),
        ("ns:cd:burst:u3", "cd:burst", "account"),
    ],
)
def test_classify_key(key: str, family: str, subject: str) -> None:
    assert classify_key(key, "ns", ACCOUNTS, POSTS) == (family, subject)


def test_classify_key_never_takes_the_family_name_for_an_id() -> None:
    # A family called like a post id is still a family.
    assert classify_key("ns:p1:u1", "ns", ACCOUNTS, POSTS) == ("p1", "account")


def test_classify_key_outside_the_namespace_is_an_error() -> None:
    with pytest.raises(ValueError):
        classify_key("other:acct:u1", "ns", ACCOUNTS, POSTS)


def test_usage_by_family_groups_and_attributes() -> None:
    sizes = [
        ("ns:acct:u1", 100),
        ("ns:acct:u2", 120),
        ("ns:w:actor_likes:u1", 300),
        ("ns:post:p1", 200),
        ("ns:models", 5000),
        ("ns:acct:ghost", 80),  # an account id the capture does not know
    ]
    families = usage_by_family(sizes, "ns", ACCOUNTS, POSTS)
    assert families["acct"].keys == 3
    assert families["acct"].bytes == 300
    assert families["acct"].subject == "account"  # two of three ids are accounts
    assert families["post"].subject == "post"
    assert families["models"].subject == "other"
    assert bytes_per_subject(families, "account", 2) == (300 + 300) / 2
    assert bytes_per_subject(families, "post", 2) == 100
    assert bytes_per_subject(families, "account", 0) is None


def test_a_family_of_mostly_unknown_ids_is_other() -> None:
    usage = FamilyUsage("x", keys=4, bytes=10, account_ids=2, post_ids=0)
    assert usage.subject == "other"
