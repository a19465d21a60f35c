"""Limits of the event contract, shared by the validator and its fast path."""

from __future__ import annotations

from typing import Final

# Plausible event-time range: 2000-01-01 .. 2100-01-01 UTC. Outside it a timestamp is a unit
# mistake (milliseconds, microseconds) or garbage, and would poison every window it touches.
MIN_TS: Final = 946_684_800.0
MAX_TS: Final = 4_102_444_800.0
MAX_ID_LENGTH: Final = 256
MAX_DWELL_MS: Final = 86_400_000
MAX_COUNT: Final = 10**12
