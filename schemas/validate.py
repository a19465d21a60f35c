"""Turn raw input into typed records, or say exactly what is wrong with it.

Hand-written rather than driven by ``jsonschema`` because it runs on every event of the hot
path; ``tests/unit/schemas`` checks that it accepts and rejects the same documents as the JSON
Schema files.

>>> parse_event(b'{"event_id":"e1","type":"like","actor_id":"a","post_id":"p",'
...             b'"author_id":"u","ts":"2026-11-01T00:00:00Z"}').ts
1793491200.0
>>> try:
...     parse_event(b'{"type":"like"}')
... except InvalidEvent as err:
...     print(err.reason, err.field)
missing_field event_id
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from schemas._fastpath import fast_parse
from schemas.limits import MAX_COUNT, MAX_DWELL_MS, MAX_ID_LENGTH, MAX_TS, MIN_TS
from schemas.records import AccountSnapshot, Event, LikeEvent, PostSnapshot

#: RFC 3339 date-time with a mandatory offset; the same pattern as in event.schema.json.
#: (datetime.fromisoformat alone would also take ISO 8601 forms RFC 3339 does not allow.)
RFC3339: Final = re.compile(
    r"20[0-9]{2}-[0-1][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-5][0-9]:[0-6][0-9](\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-2][0-9]:[0-5][0-9])"
)

REJECT_REASONS: Final = (
    "not_utf8",
    "invalid_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "unknown_type",
    "bad_timestamp",
    "bad_id",
    "bad_value",
)


class InvalidEvent(ValueError):
    """A record that breaks the contract.

    Attributes
    ----------
    reason
        A short machine-readable code from :data:`REJECT_REASONS` (a metric label).
    field
        The offending field, or ``None`` when the record as a whole is wrong.
    """

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field

    def __str__(self) -> str:
        text = self.args[0]
        return f"{self.field}: {text}" if self.field else str(text)


def decode_json(raw: bytes | bytearray | memoryview | str) -> Any:
    """Decode one JSON document, mapping failures to :class:`InvalidEvent`."""
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidEvent(
                "not_utf8", f"record is not UTF-8 (byte {err.start}: {err.reason})"
            ) from None
    else:
        text = raw
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidEvent(
            "invalid_json", f"not JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    except RecursionError:
        raise InvalidEvent("invalid_json", "not JSON: nested too deeply") from None


def parse_event(raw: bytes | str | Any) -> Event:
    """Parse and validate one event (like, unlike, account or post snapshot).

    ``raw`` is the record's bytes or text, or an already decoded JSON value.

    Raises
    ------
    InvalidEvent
        With the reason code, the field, and a message a person can act on.
    """
    if isinstance(raw, bytes | str):
        event = fast_parse(raw)  # well-formed records, at C speed
        if event is not None:
            return event
    obj = decode_json(raw) if isinstance(raw, bytes | bytearray | memoryview | str) else raw
    if not isinstance(obj, Mapping):
        raise InvalidEvent("not_object", f"expected a JSON object, got {_json_kind(obj)}")
    kind = obj.get("type")
    if kind == "like" or kind == "unlike":
        return LikeEvent(
            event_id=_id(obj, "event_id"),
            type=kind,
            actor_id=_id(obj, "actor_id"),
            post_id=_id(obj, "post_id"),
            author_id=_id(obj, "author_id"),
            ts=_timestamp(obj, "ts"),
            actor_created_at=_optional_timestamp(obj, "actor_created_at"),
            device_id=_optional_id(obj, "device_id"),
            ip=_optional_id(obj, "ip"),
            dwell_ms=_optional_count(obj, "dwell_ms", MAX_DWELL_MS),
        )
    if kind == "account":
        return AccountSnapshot(
            event_id=_id(obj, "event_id"),
            account_id=_id(obj, "account_id"),
            ts=_timestamp(obj, "ts"),
            created_at=_timestamp(obj, "created_at"),
            followers=_optional_count(obj, "followers"),
            following=_optional_count(obj, "following"),
            posts=_optional_count(obj, "posts"),
        )
    if kind == "post":
        return PostSnapshot(
            event_id=_id(obj, "event_id"),
            post_id=_id(obj, "post_id"),
            author_id=_id(obj, "author_id"),
            ts=_timestamp(obj, "ts"),
            created_at=_optional_timestamp(obj, "created_at"),
            views=_optional_count(obj, "views"),
            completions=_optional_count(obj, "completions"),
        )
    if kind is None:
        if "type" in obj:
            raise InvalidEvent("wrong_type", "must be a string, got null", "type")
        # Report the identity first when it is missing too: that is what a producer fixes first.
        if "event_id" not in obj:
            raise InvalidEvent("missing_field", "required field is missing", "event_id")
        raise InvalidEvent("missing_field", "required field is missing", "type")
    if not isinstance(kind, str):
        raise InvalidEvent("wrong_type", f"must be a string, got {_json_kind(kind)}", "type")
    raise InvalidEvent(
        "unknown_type",
        f"unknown event type {_preview(kind)}; expected like, unlike, account or post",
        "type",
    )


def _require(obj: Mapping[str, Any], name: str) -> Any:
    try:
        return obj[name]
    except KeyError:
        raise InvalidEvent("missing_field", "required field is missing", name) from None


def _id(obj: Mapping[str, Any], name: str) -> str:
    return _check_id(_require(obj, name), name)


def _optional_id(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    return None if value is None else _check_id(value, name)


def _check_id(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidEvent("wrong_type", f"must be a string, got {_json_kind(value)}", name)
    if not value or value.isspace():
        raise InvalidEvent("bad_id", "must not be empty", name)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidEvent(
            "bad_id", f"is {len(value)} characters long; at most {MAX_ID_LENGTH} allowed", name
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            # JSON lets "\ud800" through; nothing downstream (Redis scripts, Kafka) can.
            raise InvalidEvent(
                "bad_id", f"holds an unpaired surrogate (U+{ord(value[err.start]):04X})", name
            ) from None
    return value


def _timestamp(obj: Mapping[str, Any], name: str) -> float:
    return parse_timestamp(_require(obj, name), name)


def _optional_timestamp(obj: Mapping[str, Any], name: str) -> float | None:
    value = obj.get(name)
    return None if value is None else parse_timestamp(value, name)


def parse_timestamp(value: Any, name: str = "ts") -> float:
    """Epoch seconds from a number or an RFC 3339 string, within 2000..2100.

    >>> parse_timestamp(1793491200)
    1793491200.0
    >>> parse_timestamp("2026-11-01T08:00:00+08:00")
    1793491200.0
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidEvent(
            "wrong_type",
            f"must be epoch seconds or an RFC 3339 string, got {_json_kind(value)}",
            name,
        )
    if isinstance(value, str):
        if RFC3339.fullmatch(value) is None:
            if RFC3339.fullmatch(value + "Z") is not None:
                problem = "has no UTC offset (add Z or +hh:mm)"
            else:
                problem = "is not an RFC 3339 timestamp between 2000 and 2099"
            raise InvalidEvent("bad_timestamp", f"{_preview(value)} {problem}", name)
        try:
            # fromisoformat in 3.11 wants 'T'/'+00:00' spelled its way and at most 6 digits.
            text = value.replace("z", "Z").replace("t", "T", 1)
            seconds = datetime.fromisoformat(_trim_fraction(text)).timestamp()
        except ValueError:
            raise InvalidEvent(
                "bad_timestamp", f"{_preview(value)} is not a valid calendar time", name
            ) from None
    else:
        seconds = float(value)
        if not math.isfinite(seconds):
            raise InvalidEvent("bad_timestamp", f"{value!r} is not a finite number", name)
    if not MIN_TS <= seconds < MAX_TS:
        hint = " (milliseconds? the contract wants seconds)" if seconds >= MAX_TS else ""
        raise InvalidEvent(
            "bad_timestamp",
            f"{value!r} is outside 2000-01-01..2100-01-01 as epoch seconds{hint}",
            name,
        )
    return seconds


def _trim_fraction(text: str) -> str:
    """Cut fractional seconds to microseconds, which is all ``datetime`` holds."""
    dot = text.find(".", 19)
    if dot < 0:
        return text
    end = dot + 1
    while end < len(text) and text[end].isdigit():
        end += 1
    return text[: min(end, dot + 7)] + text[end:]


def _optional_count(obj: Mapping[str, Any], name: str, maximum: int = MAX_COUNT) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidEvent("wrong_type", f"must be an integer, got {_json_kind(value)}", name)
    if not 0 <= value <= maximum:
        raise InvalidEvent("bad_value", f"{value} is outside 0..{maximum}", name)
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _preview(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
