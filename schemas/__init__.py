"""The event and alert contract: JSON Schema files plus the typed records the code uses."""

import json
from importlib import resources
from typing import Any

from schemas.records import (
    AccountSnapshot,
    Alert,
    Event,
    LikeEvent,
    PostSnapshot,
)
from schemas.validate import REJECT_REASONS, InvalidEvent, decode_json, parse_event


def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``name`` (``"event"`` or ``"alert"``) shipped with the package."""
    text = resources.files(__name__).joinpath(f"{name}.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


__all__ = [
    "REJECT_REASONS",
    "AccountSnapshot",
    "Alert",
    "Event",
    "InvalidEvent",
    "LikeEvent",
    "PostSnapshot",
    "decode_json",
    "load_schema",
    "parse_event",
]
