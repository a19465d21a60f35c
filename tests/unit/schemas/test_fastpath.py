"""The fast path accepts only what the validator accepts, and builds the same records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas import InvalidEvent, parse_event
from schemas._fastpath import fast_parse
from tests.unit.schemas.test_validate import INVALID, LIKE, VALID, with_

ACCOUNT = {
    "event_id": "s",
    "type": "account",
    "account_id": "a",
    "ts": 1793491200.0,
    "created_at": 1793400000,
    "followers": 3,
    "following": 0,
    "posts": 1,
}
POST = {
    "event_id": "s",
    "type": "post",
    "post_id": "p",
    "author_id": "a",
    "ts": 1793491200,
    "created_at": 1793400000.25,
    "views": 10,
    "completions": 2,
}

# Shapes the hot path sees all day: the fast path must take them (or it is not a fast path).
COMMON = [
    pytest.param(LIKE, id="like"),
    pytest.param(with_(type="unlike", dwell_ms=1200, actor_created_at=1793400000.5), id="unlike"),
    pytest.param(with_(device_id=None, extra={"x": [1]}), id="null-and-extra"),
    pytest.param(ACCOUNT, id="account"),
    pytest.param(POST, id="post"),
]

EDGES: list[Any] = [
    pytest.param(
        b'{"event_id":"e","type":"like","actor_id":"a","post_id":"p","author_id":"u",'
        b'"ts":1793491200,"ts":1793491300}',
        id="duplicate-key-last-wins",
    ),
    pytest.param(json.dumps(with_(dwell_ms=5.0)).encode(), id="integral-float-count"),
    pytest.param(json.dumps(with_(actor_id="\u2003\t")).encode(), id="unicode-blank-id"),
    pytest.param(json.dumps(with_(actor_id="a\u2003")).encode(), id="id-with-unicode-space"),
    pytest.param(
        b'{"event_id":"e","type":"like","actor_id":"\\ud800","post_id":"p",'
        b'"author_id":"u","ts":1793491200}',
        id="lone-surrogate",
    ),
    pytest.param(json.dumps(with_(ts=float("nan"))).encode(), id="nan-ts"),
    pytest.param(json.dumps(with_(ts=4102444800)).encode(), id="ts-at-upper-bound"),
    pytest.param(json.dumps(with_(ts=946684800)).encode(), id="ts-at-lower-bound"),
    pytest.param(json.dumps(with_(dwell_ms=86_400_001)).encode(), id="dwell-over-limit"),
    pytest.param(json.dumps(with_(dwell_ms=True)).encode(), id="boolean-count"),
]


def slow(raw: bytes) -> Any:
    """The validator's verdict without the fast path: the record, or the reject reason."""
    try:
        return parse_event(json.loads(raw))
    except (InvalidEvent, ValueError) as err:
        return getattr(err, "reason", "invalid_json")


@pytest.mark.parametrize("event", COMMON)
def test_common_events_take_the_fast_path_and_match(event: dict[str, Any]) -> None:
    raw = json.dumps(event).encode()
    fast = fast_parse(raw)
    assert fast is not None
    assert fast == slow(raw)
    assert parse_event(raw) == fast


@pytest.mark.parametrize("event", VALID)
def test_valid_events_are_taken_identically_or_left_to_the_validator(event: Any) -> None:
    raw = json.dumps(event).encode()
    fast = fast_parse(raw)
    assert fast is None or fast == slow(raw)


@pytest.mark.parametrize(("event", "reason", "field"), INVALID)
def test_invalid_events_never_pass_the_fast_path(event: Any, reason: str, field: str) -> None:
    assert fast_parse(json.dumps(event).encode()) is None


@pytest.mark.parametrize("raw", EDGES)
def test_edge_cases_agree_with_the_validator(raw: bytes) -> None:
    fast = fast_parse(raw)
    if fast is not None:
        assert fast == slow(raw)
    # parse_event (fast path first) and the validator alone reach the same verdict.
    try:
        verdict: Any = parse_event(raw)
    except InvalidEvent as err:
        verdict = err.reason
    assert verdict == slow(raw)


def test_non_utf8_is_left_to_the_validator() -> None:
    raw = json.dumps(LIKE).encode().replace(b"a-1", b"a-\xff")
    assert fast_parse(raw) is None
