"""The validator accepts the contract's events and rejects bad ones with a precise reason.

Every case is also checked against the JSON Schema files, so the hand-written validator and
the published contract cannot drift apart.
"""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import pytest

from schemas import InvalidEvent, LikeEvent, load_schema, parse_event
from schemas.records import AccountSnapshot, Alert, PostSnapshot

LIKE: dict[str, Any] = {
    "event_id": "e-1",
    "type": "like",
    "actor_id": "a-1",
    "post_id": "p-1",
    "author_id": "u-1",
    "ts": 1793491200.5,
}
EVENT_SCHEMA = jsonschema.Draft202012Validator(
    load_schema("event"), format_checker=jsonschema.FormatChecker()
)


def with_(**changes: Any) -> dict[str, Any]:
    event = dict(LIKE)
    for key, value in changes.items():
        if value is ...:
            event.pop(key)
        else:
            event[key] = value
    return event


VALID = [
    pytest.param(LIKE, id="like"),
    pytest.param(with_(type="unlike"), id="unlike"),
    pytest.param(with_(ts="2026-11-01T00:00:00Z"), id="rfc3339-z"),
    pytest.param(with_(ts="2026-11-01T08:00:00+08:00"), id="rfc3339-offset"),
    pytest.param(with_(ts=1793491200), id="integer-ts"),
    pytest.param(
        with_(actor_created_at=1793400000, device_id="d-1", ip="10.0.0.1", dwell_ms=15000),
        id="optional-fields",
    ),
    pytest.param(with_(device_id=None, dwell_ms=None), id="explicit-nulls"),
    pytest.param(with_(extra_field={"nested": [1, 2]}), id="unknown-extra-field"),
    pytest.param(with_(actor_id="x" * 256), id="id-at-max-length"),
    pytest.param(with_(actor_id="用户-42"), id="non-ascii-id"),
    pytest.param(
        {
            "event_id": "s-1",
            "type": "account",
            "account_id": "a-1",
            "ts": 1793491200,
            "created_at": "2026-10-01T00:00:00Z",
            "followers": 12000,
            "following": 80,
            "posts": 3,
        },
        id="account-snapshot",
    ),
    pytest.param(
        {
            "event_id": "s-2",
            "type": "post",
            "post_id": "p-1",
            "author_id": "u-1",
            "ts": 1793491200,
            "views": 900,
            "completions": 300,
        },
        id="post-snapshot",
    ),
]


@pytest.mark.parametrize("event", VALID)
def test_valid_events_parse_and_match_schema(event: dict[str, Any]) -> None:
    record = parse_event(json.dumps(event).encode())
    assert record.event_id == event["event_id"]
    assert EVENT_SCHEMA.is_valid(event), list(EVENT_SCHEMA.iter_errors(event))


def test_like_fields_are_typed() -> None:
    record = parse_event(json.dumps(with_(ts="2026-11-01T00:00:00Z", dwell_ms=1500.0)))
    assert isinstance(record, LikeEvent)
    assert record.ts == 1793491200.0
    assert record.dwell_ms == 1500
    assert (record.actor_id, record.post_id, record.author_id) == ("a-1", "p-1", "u-1")


def test_snapshots_are_typed() -> None:
    account = parse_event(
        {
            "event_id": "s",
            "type": "account",
            "account_id": "a",
            "ts": 1793491200,
            "created_at": 1793400000,
            "followers": 5,
        }
    )
    assert isinstance(account, AccountSnapshot)
    assert (account.created_at, account.followers, account.posts) == (1793400000.0, 5, None)
    post = parse_event(
        {"event_id": "s", "type": "post", "post_id": "p", "author_id": "u", "ts": 1793491200}
    )
    assert isinstance(post, PostSnapshot) and post.views is None


INVALID = [
    pytest.param(with_(event_id=...), "missing_field", "event_id", id="missing-event-id"),
    pytest.param(with_(actor_id=...), "missing_field", "actor_id", id="missing-actor"),
    pytest.param(with_(ts=...), "missing_field", "ts", id="missing-ts"),
    pytest.param(with_(type=...), "missing_field", "type", id="missing-type"),
    pytest.param(with_(actor_id=42), "wrong_type", "actor_id", id="numeric-id"),
    pytest.param(with_(post_id=None), "wrong_type", "post_id", id="null-required-id"),
    pytest.param(with_(type=None), "wrong_type", "type", id="null-type"),
    pytest.param(with_(type=7), "wrong_type", "type", id="numeric-type"),
    pytest.param(with_(type="share"), "unknown_type", "type", id="unknown-type"),
    pytest.param(with_(type="LIKE"), "unknown_type", "type", id="type-is-case-sensitive"),
    pytest.param(with_(ts=True), "wrong_type", "ts", id="boolean-ts"),
    pytest.param(with_(ts=[1]), "wrong_type", "ts", id="array-ts"),
    pytest.param(with_(ts=1793491200000), "bad_timestamp", "ts", id="milliseconds-ts"),
    pytest.param(with_(ts=-5), "bad_timestamp", "ts", id="negative-ts"),
    pytest.param(with_(ts=0), "bad_timestamp", "ts", id="epoch-zero"),
    pytest.param(with_(ts="yesterday"), "bad_timestamp", "ts", id="unparseable-ts"),
    pytest.param(with_(ts="2026-11-01T00:00:00"), "bad_timestamp", "ts", id="ts-without-offset"),
    pytest.param(with_(ts="3026-11-01T00:00:00Z"), "bad_timestamp", "ts", id="far-future-ts"),
    pytest.param(
        with_(actor_created_at="nope"), "bad_timestamp", "actor_created_at", id="bad-optional-ts"
    ),
    pytest.param(with_(actor_id=""), "bad_id", "actor_id", id="empty-id"),
    pytest.param(with_(actor_id="   "), "bad_id", "actor_id", id="blank-id"),
    pytest.param(with_(event_id="e" * 257), "bad_id", "event_id", id="very-long-id"),
    pytest.param(with_(dwell_ms=-1), "bad_value", "dwell_ms", id="negative-dwell"),
    pytest.param(with_(dwell_ms=1.5), "wrong_type", "dwell_ms", id="fractional-dwell"),
    pytest.param(with_(dwell_ms="15"), "wrong_type", "dwell_ms", id="string-dwell"),
    pytest.param(
        {"event_id": "s", "type": "account", "account_id": "a", "ts": 1793491200},
        "missing_field",
        "created_at",
        id="account-without-created-at",
    ),
    pytest.param(
        {
            "event_id": "s",
            "type": "account",
            "account_id": "a",
            "ts": 1793491200,
            "created_at": 1793400000,
            "followers": -3,
        },
        "bad_value",
        "followers",
        id="negative-followers",
    ),
    pytest.param([LIKE], "not_object", None, id="json-array"),
    pytest.param("like", "not_object", None, id="json-string"),
    pytest.param(None, "not_object", None, id="json-null"),
]


@pytest.mark.parametrize(("event", "reason", "field"), INVALID)
def test_invalid_events_are_rejected_with_reason(event: Any, reason: str, field: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(json.dumps(event).encode())
    assert caught.value.reason == reason
    assert caught.value.field == field
    if field:
        assert str(caught.value).startswith(f"{field}: ")
    assert not EVENT_SCHEMA.is_valid(event)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_timestamps_are_rejected(value: float) -> None:
    # json.dumps writes NaN/Infinity, which Python's json (and many producers) accept.
    with pytest.raises(InvalidEvent) as caught:
        parse_event(json.dumps(with_(ts=value)))
    assert (caught.value.reason, caught.value.field) == ("bad_timestamp", "ts")


def test_non_utf8_bytes_are_rejected() -> None:
    raw = json.dumps(LIKE).encode().replace(b"a-1", b"a-\xff\xfe")
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    assert caught.value.reason == "not_utf8"
    assert "not UTF-8" in str(caught.value)


@pytest.mark.parametrize(
    "raw", [b"", b"{", b'{"event_id": "e"', b"not json", b'{"a": 1} trailing'], ids=repr
)
def test_malformed_json_is_rejected(raw: bytes) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    assert caught.value.reason == "invalid_json"


def test_deeply_nested_json_is_rejected_not_crashing() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(b"[" * 100_000 + b"]" * 100_000)
    assert caught.value.reason == "invalid_json"


def test_alert_round_trip_matches_alert_schema() -> None:
    alert = Alert(
        alert_id="abc",
        detector="burst",
        subject_kind="account",
        subject_id="a-1",
        accounts=("a-1",),
        score=2.5,
        severity="medium",
        event_time=1793491260.0,
        window_start=1793491200.0,
        window_end=1793491260.0,
        evidence={"likes_in_window": 40},
    )
    obj = json.loads(alert.to_json())
    jsonschema.validate(obj, load_schema("alert"))
    assert Alert.from_dict(obj) == alert
    assert alert.to_json() == Alert.from_dict(obj).to_json()


def test_alert_schema_rejects_bad_alert() -> None:
    bad = {"alert_id": "x", "detector": "burst", "subject_kind": "planet"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, load_schema("alert"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01T00:00:00Z", 1793491200.0),
        ("2026-11-01t00:00:00z", 1793491200.0),
        ("2026-11-01 00:00:00+00:00", 1793491200.0),
        ("2026-11-01T00:00:00.123456789Z", 1793491200.123456),
        ("2026-10-31T19:00:00-05:00", 1793491200.0),
    ],
)
def test_rfc3339_forms(text: str, expected: float) -> None:
    assert parse_event(with_(ts=text)).ts == pytest.approx(expected)
    assert EVENT_SCHEMA.is_valid(with_(ts=text))


@pytest.mark.parametrize(
    "text", ["20261101T000000Z", "2026-11-01", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z"]
)
def test_iso_forms_outside_rfc3339_are_rejected(text: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(with_(ts=text))
    assert caught.value.reason == "bad_timestamp"


@pytest.mark.parametrize("field", ["actor_id", "event_id", "device_id"])
def test_ids_with_an_unpaired_surrogate_are_rejected(field: str) -> None:
    # JSON allows the escape "\ud800", and so does the JSON Schema; the string it makes can
    # be neither stored in Redis nor sent on, so it is a bad id (not a crash downstream).
    with pytest.raises(InvalidEvent) as caught:
        parse_event(json.dumps(with_(**{field: "a\ud800"})).encode())
    assert (caught.value.reason, caught.value.field) == ("bad_id", field)
    assert "U+D800" in str(caught.value)
