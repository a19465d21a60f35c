"""Input handling and the result shape shared by the reference methods.

The reference methods read like/unlike events as plain dicts in the contract format of
``DESIGN.md`` with ``ts`` already parsed to epoch seconds. Records of other types (account and
post snapshots) are skipped; a like/unlike record that lacks a field the methods need raises
:class:`ValueError`, because a reference run that silently loses events would make the
comparison meaningless.

"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

__all__ = ["LikeRecord", "ReferenceResult", "like_records"]


class LikeRecord(NamedTuple):
    """One like or unlike, reduced to what the reference methods use."""

    ts: float
    is_like: bool
    actor_id: str
    post_id: str


class ReferenceResult(Protocol):
    """What every reference method returns, so an evaluator can treat them alike.

    ``flagged`` is the set of flagged account ids; ``scores`` and ``first_detection`` have one
    entry per flagged account: a method-specific suspiciousness (higher = more suspicious) and
    the event time (epoch seconds) at which the method first flags the account.

    """

    @property
    def flagged(self) -> frozenset[str]: ...

    @property
    def scores(self) -> Mapping[str, float]: ...

    @property
    def first_detection(self) -> Mapping[str, float]: ...


_KINDS = {"like": True, "unlike": False}


def like_records(events: Iterable[Mapping[str, Any]]) -> list[LikeRecord]:
    """Like and unlike events in event-time order, redeliveries dropped.

    Records whose ``type`` is neither ``"like"`` nor ``"unlike"`` are skipped. Records that
    carry an ``event_id`` already seen are dropped (the contract's idempotency key; the first
    copy wins); records without one are all kept. The sort is stable, so events with equal
    ``ts`` keep their input order.

    Parameters
    ----------
    events
        Event dicts with ``type``, ``actor_id``, ``post_id`` and a numeric ``ts``.

    Returns
    -------
    list[LikeRecord]
        The like/unlike records sorted by ``ts``.

    Raises
    ------
    ValueError
        If a like/unlike record lacks ``actor_id``, ``post_id`` or ``ts``, or its ``ts`` is not
        a finite number of epoch seconds.

    Examples
    --------
    >>> like_records([
    ...     {"event_id": "e2", "type": "unlike", "actor_id": "a", "post_id": "p", "ts": 20.0},
    ...     {"event_id": "e1", "type": "like", "actor_id": "a", "post_id": "p", "ts": 10.0},
    ...     {"event_id": "e1", "type": "like", "actor_id": "a", "post_id": "p", "ts": 10.0},
    ...     {"event_id": "s1", "type": "account", "account_id": "a", "ts": 5.0},
    ... ])  # doctest: +NORMALIZE_WHITESPACE
    [LikeRecord(ts=10.0, is_like=True, actor_id='a', post_id='p'),
     LikeRecord(ts=20.0, is_like=False, actor_id='a', post_id='p')]

    """
    seen: set[Any] = set()
    out: list[LikeRecord] = []
    for n, ev in enumerate(events):
        kind = ev.get("type")
        is_like = _KINDS.get(kind) if isinstance(kind, str) else None
        if is_like is None:
            continue
        event_id = ev.get("event_id")
        if event_id is not None:
            if event_id in seen:
                continue
            seen.add(event_id)
        try:
            actor, post, raw_ts = ev["actor_id"], ev["post_id"], ev["ts"]
        except KeyError as exc:
            raise ValueError(f"event #{n} ({ev.get('type')}) lacks field {exc}") from None
        if isinstance(raw_ts, bool) or not isinstance(raw_ts, int | float):
            raise ValueError(f"event #{n}: ts must be epoch seconds, got {raw_ts!r}")
        ts = float(raw_ts)
        if not math.isfinite(ts):
            raise ValueError(f"event #{n}: ts is not finite: {raw_ts!r}")
        out.append(LikeRecord(ts, is_like, str(actor), str(post)))
    out.sort(key=lambda r: r.ts)
    return out
