"""Event-time sliding windows in Redis, for a whole batch in one round trip.

A *window family* is a set of sorted sets of one kind, e.g. "likes per actor": one key per
actor, members are event ids, scores are event times. Detectors declare the families they need
as :class:`WindowSpec`; :class:`WindowStore` merges the declarations, sends one Lua call per
batch, and hands back per-event counts over each window length.

Idempotent by construction: re-adding a member is a no-op, so a redelivered event never counts
twice, and its status says so.

A family declared ``mirrored`` (keyed by the partition key, counting event ids) is counted in
process from a :class:`~detectors.mirror.ScoreMirror` of its keys; Redis still stores every
entry and corrects the copy whenever it is stale.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from detectors.config import WindowsConfig
from detectors.mirror import ScoreMirror
from detectors.state import RedisState, script_json
from schemas.records import LikeEvent

ADDED = 1
DUPLICATE = 0
LATE = -1

#: A mirrored key's TTL is renewed once per this share of ``key_ttl_seconds`` (wall clock), not
#: every batch: an hour for the default two days.
TTL_REFRESH_SHARE = 1 / 48

#: Returns the window key for an event, or ``None`` when the family does not apply to it.
KeyOf = Callable[[LikeEvent], str | None]
MemberOf = Callable[[LikeEvent], str]


def _event_id(event: LikeEvent) -> str:
    return event.event_id


@dataclass(frozen=True)
class WindowSpec:
    """One window family.

    Parameters
    ----------
    name
        Family name, part of the Redis key (``{ns}:w:{name}:{key}``).
    key_of
        Which key an event goes to (``None``: the family ignores the event).
    lengths
        Window lengths in seconds to count over, at each event's own time.
    member_of
        The sorted-set member; the event id by default (count events). Use another id (e.g.
        the actor) together with ``latest=True`` to count distinct members instead.
    latest
        Keep each member at its latest time (ZADD GT) rather than its first (ZADD NX).
    mirrored
        Count in process from a copy of the keys' event times (see :mod:`detectors.mirror`).
        Only for families keyed by the partition key (one worker writes each key) that count
        events (member = event id, not ``latest``).
    """

    name: str
    key_of: KeyOf
    lengths: tuple[int, ...]
    member_of: MemberOf = _event_id
    latest: bool = False
    mirrored: bool = False

    def __post_init__(self) -> None:
        if self.mirrored and (self.latest or self.member_of is not _event_id):
            raise ValueError(f"window family {self.name!r}: only event counts can be mirrored")


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """What the store says about one event in one family."""

    status: int
    counts: tuple[int, ...]


class WindowStore:
    """Runs the declared window families over batches of like events."""

    def __init__(self, state: RedisState, config: WindowsConfig, specs: Sequence[WindowSpec]):
        self.state = state
        self.config = config
        self.specs: list[WindowSpec] = []
        seen: dict[str, WindowSpec] = {}
        for spec in specs:
            if spec.name in seen:
                if seen[spec.name] != spec:
                    raise ValueError(f"window family {spec.name!r} declared twice, differently")
                continue
            seen[spec.name] = spec
            self.specs.append(spec)
        self._mirrors: dict[str, ScoreMirror] = {
            spec.name: ScoreMirror(
                config.retention_seconds,
                config.max_members,
                config.mirror_keys,
                ttl_refresh_seconds=config.key_ttl_seconds * TTL_REFRESH_SHARE,
            )
            for spec in self.specs
            if spec.mirrored
        }
        self._header = self._build_header()
        #: Keys read back from Redis into a mirror (first touches and stale copies).
        self.mirror_loads = 0

    def forget_mirrors(self) -> None:
        """Drop the in-process copies (e.g. after a rebalance); Redis refills them."""
        for mirror in self._mirrors.values():
            mirror.clear()

    def _build_header(self) -> list[str | int]:
        header: list[str | int] = [self.state.namespace, len(self.specs)]
        for spec in self.specs:
            header += [
                spec.name,
                self.config.retention_seconds,
                self.config.max_members,
                self.config.key_ttl_seconds,
                "gt" if spec.latest else "nx",
                1 if spec.mirrored else 0,
            ]
            header += [0] if spec.mirrored else [len(spec.lengths), *spec.lengths]
        return header

    def update(self, events: Sequence[LikeEvent]) -> dict[str, list[WindowCounts | None]]:
        """Add every event to every family that applies, and count.

        Returns, per family name, a list aligned with ``events``: the event's
        :class:`WindowCounts`, or ``None`` where the family does not apply.
        """
        entries: list[tuple[Any, ...]] = []
        placed: list[tuple[int, int]] = []  # (family index, event index) per entry, in order
        now = time.monotonic()
        for f_index, spec in enumerate(self.specs):
            key_of, member_of, number = spec.key_of, spec.member_of, f_index + 1
            mirror = self._mirrors.get(spec.name)
            expected: dict[str, tuple[int, float, float, int]] = {}
            for e_index, event in enumerate(events):
                key = key_of(event)
                if key is None:
                    continue
                if mirror is None:
                    entries.append((number, key, member_of(event), event.ts))
                else:
                    if key not in expected:
                        renew = 1 if mirror.ttl_due(key, now) else 0
                        expected[key] = (*mirror.expected(key), renew)
                    entries.append((number, key, event.event_id, event.ts, *expected[key]))
                placed.append((f_index, e_index))
        result: dict[str, list[WindowCounts | None]] = {
            spec.name: [None] * len(events) for spec in self.specs
        }
        if not entries:
            return result
        # Family by family (not event by event) is fine: families never share keys, and
        # within a family entries keep event order, which is all the counts depend on.
        reply = bytes(self.state.run_script("windows", [*self._header, script_json(entries)]))
        flat_part, *sent = reply.split(b";")
        self.mirror_loads += len(sent)
        for item in sent:
            index, _, scores = item.partition(b":")
            entry = entries[int(index) - 1]
            self._mirrors[self.specs[entry[0] - 1].name].load(
                entry[1], [float(s) for s in scores.split(b",") if s]
            )
        flat = [int(value) for value in flat_part.split(b",")]
        pos = 0
        touched: dict[str, set[str]] = {name: set() for name in self._mirrors}
        for (f_index, e_index), entry in zip(placed, entries, strict=True):
            spec = self.specs[f_index]
            status = flat[pos]
            mirror = self._mirrors.get(spec.name)
            if mirror is None:
                n = len(spec.lengths)
                counts = tuple(flat[pos + 1 : pos + 1 + n])
                pos += 1 + n
            else:
                pos += 1
                key, ts = entry[1], entry[3]
                if key not in touched[spec.name]:
                    touched[spec.name].add(key)
                    mirror.touch(key)
                if status == ADDED:
                    mirror.add(key, ts)
                if status == LATE:
                    counts = (0,) * len(spec.lengths)
                else:
                    counts = mirror.counts(key, ts, spec.lengths)
            result[spec.name][e_index] = WindowCounts(status, counts)
        for name, keys in touched.items():
            self._mirrors[name].trim(keys)
        return result
