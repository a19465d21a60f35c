"""The small interface every detector implements, and the batch it is handed.

A detector sees one batch of like/unlike events at a time, already counted into the shared
window families (and any families it declared itself), and returns :class:`Finding` s. The
pipeline turns findings into contract alerts (ids, cool-down, severity); detectors never talk
to Kafka, Faust or the alerts topic.
"""

from __future__ import annotations

import abc
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from detectors.state import RedisState
from detectors.windows import WindowCounts, WindowSpec
from schemas.records import LikeEvent, SubjectKind

#: Core window families the pipeline always keeps: likes and unlikes per actor, member =
#: event id. They are also the idempotency record: a like whose event id is already in
#: ``actor_likes`` is a redelivery.
ACTOR_LIKES = "actor_likes"
ACTOR_UNLIKES = "actor_unlikes"


@dataclass(frozen=True, slots=True)
class Finding:
    """A detector's verdict on one subject, before alert hygiene.

    ``score`` is normalised so that 1.0 is exactly the detector's threshold.
    ``trigger_event_id`` names the event that tipped it; it makes the alert id deterministic.
    ``outbox_event_id`` is the event whose redelivery re-sends the alert, when that is not the
    trigger (a follow-up report is due at a time, not at an event: the batch's first like at or
    after that time claims it).
    """

    detector: str
    subject_kind: SubjectKind
    subject_id: str
    accounts: tuple[str, ...]
    score: float
    event_time: float
    window_start: float
    window_end: float
    trigger_event_id: str
    evidence: dict[str, Any] = field(default_factory=dict)
    cooldown_seconds: float | None = None
    outbox_event_id: str | None = None


def first_at_or_after(events: Sequence[LikeEvent], ts: float) -> str:
    """Id of the first of ``events`` (in event-time order) at or after ``ts``, else of the last.

    >>> events = [LikeEvent(f"e-{t}", "like", "a", "p", "u", float(t)) for t in (1, 5, 9)]
    >>> [first_at_or_after(events, t) for t in (5.0, 6.0, 99.0)]
    ['e-5', 'e-9', 'e-9']
    """
    for event in events:
        if event.ts >= ts:
            return event.event_id
    return events[-1].event_id


def actor_finding(
    detector: str,
    event: LikeEvent,
    score: float,
    window_seconds: float,
    evidence: dict[str, Any],
) -> Finding:
    """A finding about the event's actor, over the window of ``window_seconds`` ending at it.

    >>> e = LikeEvent("e-1", "like", "a-1", "p-1", "u-1", 1000.0)
    >>> f = actor_finding("burst", e, 1.5, 60, {})
    >>> f.subject_id, f.accounts, f.window_start, f.window_end, f.trigger_event_id
    ('a-1', ('a-1',), 940.0, 1000.0, 'e-1')
    """
    return Finding(
        detector=detector,
        subject_kind="account",
        subject_id=event.actor_id,
        accounts=(event.actor_id,),
        score=score,
        event_time=event.ts,
        window_start=event.ts - window_seconds,
        window_end=event.ts,
        trigger_event_id=event.event_id,
        evidence=evidence,
    )


@dataclass(frozen=True, slots=True)
class Batch:
    """One batch of like/unlike events, in processing order, with their window counts.

    Attributes
    ----------
    events
        The like and unlike events of the batch.
    windows
        Per window family, a list aligned with ``events`` (``None`` where it does not apply);
        counts come in the order of the family's ``WindowSpec.lengths``.
    state
        Redis, for detectors that keep state beyond windows.
    learn
        ``False`` when the events were judged before and their models learned them then (a
        stage reading them again after taking over): judge, but do not learn them twice.
    """

    events: Sequence[LikeEvent]
    windows: Mapping[str, Sequence[WindowCounts | None]]
    state: RedisState
    learn: bool = True


class Detector(abc.ABC):
    """One signal. Subclasses set :attr:`name` and implement :meth:`detect`."""

    name: ClassVar[str]
    #: Whether the detector judges state that spans accounts (a post's likers, an author's
    #: audience, groups) and learns from every account's likes. A scaled-out deployment
    #: hands those accounts to different workers, so the live path runs such detectors in
    #: one stage that takes every worker's likes in replay's order (``stream/swarm_stage.py``),
    #: on the window counts the workers computed; they may declare no window families.
    cross_account: ClassVar[bool] = False

    def window_specs(self) -> Sequence[WindowSpec]:
        """Extra window families this detector needs beyond the core ones."""
        return ()

    def prepare(self, batch: Batch) -> None:  # noqa: B027 - optional hook
        """Work this detector shares with others (a per-post liker set), done before any
        detector's :meth:`detect` runs: those run at the same time, each in its own thread."""

    @abc.abstractmethod
    def detect(self, batch: Batch) -> list[Finding]:
        """Judge a batch (and learn from its fresh events); return findings in event order.

        Runs at the same time as the other detectors' (see :class:`~detectors.pipeline.Pipeline`),
        so it may read only the Redis keys that the windows, the snapshots and :meth:`prepare`
        wrote, and write only keys of its own.
        """

    def model_state(self) -> Any:
        """Picklable online-model state to checkpoint, or ``None`` when there is none."""
        return None

    def load_model_state(self, state: Any) -> None:  # noqa: B027 - optional hook
        """Restore what :meth:`model_state` returned."""


def sampled(event_id: str, fraction: float) -> bool:
    """Deterministic sampling by event id: the same events are chosen in every run.

    >>> sampled("e-1", 1.0), sampled("e-1", 0.0)
    (True, False)
    """
    if fraction >= 1.0:
        return True
    return (zlib.crc32(event_id.encode()) & 0xFFFF) < fraction * 0x10000
