"""Swarms: lockstep like farms and mutual-like rings, as groups of accounts.

Two kinds of collusion leave the same trace, a dense group in an account-to-account graph:

* **Lockstep farms** (CopyCatch, SynchroTrap, FRAUDAR): the same accounts like the same posts
  within the same minutes. Every like pairs the actor with the post's other likers within
  ``sync_seconds``; each such co-like adds ``1 / ln(likers + popularity_offset)`` to the pair
  (FRAUDAR's column weight, so camouflage likes on popular posts add almost nothing, and posts
  with ``hot_post_likers`` recent likers add nothing at all), ``quick_boost`` times more when
  both likes came without viewing the post (dwell under ``quick_dwell_ms``). A pair becomes an
  *edge* when its decayed weight reaches ``edge_weight`` and its co-likes are a large enough
  share of both accounts' likes (``co-likes / sqrt(likes_a × likes_b) >= edge_cosine``): two
  heavy users coincide by chance, farm accounts coincide most of the time.
* **Mutual-like rings** ("like for like"): accounts that are authors too, liking each other's
  posts. A reciprocal pair (likes both ways, ``reciprocal_min_likes`` together) is an edge.

A *group* is a set of at least ``*_min_size`` accounts each linked to at least
``*_min_density`` of the others; a ring member must also give ``ring_min_share`` of its likes
to the group, which separates a ring from sociable accounts that reciprocate with many people
(organic "you rated me, I rate you"), and small circles of friends stay under the minimum size.
A lockstep group is also founded at once by a *burst* (SynchroTrap's synchronised action on
one object): ``burst_min_likers`` likes pressed without viewing, within ``sync_seconds`` on
one post, and ``burst_quick_share`` of its likes then (organic likes of a busy post are mostly
viewed). Groups are searched for around accounts with new edges (peeling the neighbourhood down
to a dense set), within a work budget that every new like adds ``search_work_per_like`` to (up
to ``max_search_work``); they grow when an account gets enough edges into one, and a lockstep
group also the CopyCatch way: its *posts* are those its members like in sync and mostly
alone, and an account that likes ``join_posts`` of them in sync joins (in a sparse farm each
account likes only some of the posts, so pairwise evidence comes late).

All cross-account state lives in Redis, keyed by post, pair, account and group (see
``docs/redis-keys.md``), and the whole batch is one Lua call (``swarm.lua``): workers that
see different accounts of the same farm build the same graph, and a group found twice, by two
workers or after a restart, keeps the id it got when it was founded.

One alert per group when it is found, and again when it has grown by ``realert_growth`` (at
least the gate's cool-down later), or ``realert_seconds`` after the last alert if it has
members that alert did not name: subject ``group``, ``accounts`` = all members, evidence =
pattern, size, density, posts liked together, time span. The alert's event is the like that
brought the members (or, for the late follow-up, the first like past ``realert_seconds``); it
lists the members as of that like.

Batch boundaries do not matter: the script takes each like to the end (evidence, edges,
searches, reports) before the next one, and nothing in it depends on where a batch ends, so
the same likes in the same order give the same alerts, with the same ids, whether they come
one at a time (a quiet live worker), in the live worker's batches or in one replay batch
(``tests/integration/detectors/test_swarm_batching.py``). Different orders (partitions that
advance at different event-time speeds) can still give different findings, so a live worker
does not run this detector itself: it forwards its likes to one swarm stage that takes every
worker's likes in replay's order (``stream/swarm_stage.py``, ``detectors/swarm_stage.py``).

Redelivery: a like of a post its actor already liked adds no evidence, so a batch seen again
(after a crash) changes nothing, and the script re-reports the groups each redelivered like
triggered (kept per event, ``sw:rep``), so a crash between this script and the alert gate
loses no group alert; the alert ids are the same as the first time.

Examples
--------
>>> from detectors.config import SwarmConfig
>>> detector = SwarmDetector(SwarmConfig())
>>> detector.name, detector.settings()[:3]
('swarm', [300.0, 3600, 1000])
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from importlib import resources
from typing import Any, ClassVar

from redis.commands.core import Script

from detectors.base import ACTOR_LIKES, Batch, Detector, Finding
from detectors.config import SwarmConfig
from detectors.state import script_json
from schemas.records import LikeEvent

PATTERNS = {"l": "lockstep", "r": "ring"}

#: Group alerts are throttled by the group record in Redis (growth, ``realert_seconds``);
#: the alert gate's cool-down must not swallow a grown group's second alert.
GATE_COOLDOWN_SECONDS = 1.0

#: Per-like flags handed to the script: the like was quick (dwell under ``quick_dwell_ms``);
#: it checks the size caps of the pair hashes it adds fields to (one like in 16, chosen by a
#: hash of its event id, so the same likes check however the stream is batched).
FLAG_QUICK, FLAG_CHECK_CAPS = 1, 2


def _script_text() -> str:
    return resources.files("detectors").joinpath("swarm.lua").read_text("utf-8")


class SwarmDetector(Detector):
    """Finds lockstep farms and like-for-like rings; one finding per new or grown group.

    Parameters
    ----------
    config
        The ``[swarm]`` settings.
    """

    name: ClassVar[str] = "swarm"
    cross_account: ClassVar[bool] = True

    def __init__(self, config: SwarmConfig) -> None:
        self.config = config
        self._script: Script | None = None
        self._settings = self.settings()

    def settings(self) -> list[str | int | float]:
        """The settings as the Lua script reads them, in its order."""
        c = self.config
        return [
            c.sync_seconds,
            c.post_horizon_seconds,
            c.post_max_likers,
            c.hot_post_likers,
            c.max_colikers,
            c.popularity_offset,
            c.pair_half_life_seconds,
            c.edge_weight,
            c.edge_cosine,
            ACTOR_LIKES,
            c.activity_window_seconds,
            c.edge_horizon_seconds,
            c.max_neighbors,
            c.max_candidates,
            c.max_pairs_per_account,
            c.reciprocal_min_likes,
            c.fan_horizon_seconds,
            c.lockstep_min_size,
            c.lockstep_min_density,
            c.ring_min_size,
            c.ring_min_density,
            c.ring_min_share,
            c.ring_max_candidates,
            c.join_edges_cap,
            c.max_group_size,
            c.max_search_work,
            c.search_work_per_like,
            c.realert_growth,
            c.realert_seconds,
            GATE_COOLDOWN_SECONDS,
            c.max_waiting,
            c.state_ttl_seconds,
            2 * c.post_horizon_seconds,
            c.state_ttl_seconds,
            c.sync_weighting,
            c.quick_boost,
            c.group_post_members,
            c.join_posts,
            c.join_post_share,
            c.group_post_share,
            c.burst_min_likers,
            c.burst_quick_share,
        ]

    def detect(self, batch: Batch) -> list[Finding]:
        """The findings of the batch's likes (unlikes are skipped), taken in the given order.

        Uses none of ``batch.windows`` (it reads the core like windows in ``swarm.lua``,
        before each like's time), so it can run behind the detection that counted the likes.
        """
        events, state = batch.events, batch.state
        # Redelivered likes too: the script knows them (they add no evidence) and re-reports
        # the groups they triggered, in case the alert never made it past the gate.
        likes: list[LikeEvent] = []
        quick_ms = self.config.quick_dwell_ms
        flat: list[str | float | int] = []
        for event in events:
            if event.type != "like":
                continue
            likes.append(event)
            dwell = event.dwell_ms
            flags = FLAG_QUICK if dwell is not None and dwell < quick_ms else 0
            if zlib.crc32(event.event_id.encode()) & 15 == 0:
                flags |= FLAG_CHECK_CAPS
            flat += (
                event.event_id,
                event.actor_id,
                event.post_id,
                event.author_id,
                event.ts,
                flags,
            )
        if not likes:
            return []
        args = [state.namespace, *self._settings, script_json(flat)]
        if self._script is None:
            self._script = state.client.register_script(_script_text())
        with state.timed(self.name):
            reply = self._script(keys=[], args=args, client=state.client)
        return parse_reports(reply, likes, self.config)


def parse_reports(
    flat: Sequence[Any], likes: Sequence[LikeEvent], config: SwarmConfig
) -> list[Finding]:
    """Turn the script's flat reply into findings (pure: no Redis).

    >>> from detectors.config import SwarmConfig
    >>> from schemas.records import LikeEvent
    >>> like = LikeEvent("e1", "like", "u1", "p1", "a1", 100.0)
    >>> reply = [1, b"l-0f", b"l", 3, b"1.0", 2, b"40.0", b"100.0", 3, 3, 0, 3, b"u1", b"u2", b"u3"]
    >>> [f] = parse_reports(reply, [like], SwarmConfig(lockstep_min_size=3))
    >>> f.subject_id, f.accounts, f.evidence["pattern"], f.window_start, f.trigger_event_id
    ('l-0f', ('u1', 'u2', 'u3'), 'lockstep', 40.0, 'e1')
    """
    findings: list[Finding] = []
    pos = 0
    while pos < len(flat):
        index, gid, kind = int(flat[pos]), _text(flat[pos + 1]), _text(flat[pos + 2])
        size, density, posts = int(flat[pos + 3]), float(flat[pos + 4]), int(flat[pos + 5])
        first, last = float(flat[pos + 6]), float(flat[pos + 7])
        new_members, edges, bursts = int(flat[pos + 8]), int(flat[pos + 9]), int(flat[pos + 10])
        count = int(flat[pos + 11])
        members = tuple(_text(m) for m in flat[pos + 12 : pos + 12 + count])
        pos += 12 + count
        trigger = likes[index - 1]
        min_size, min_density = (
            (config.lockstep_min_size, config.lockstep_min_density)
            if kind == "l"
            else (config.ring_min_size, config.ring_min_density)
        )
        # Size and density relative to the thresholds; a group founded on a burst met the
        # burst test instead of the density one.
        dense = max(density / min_density, 1.0 if bursts else 0.0)
        score = math.sqrt(size / min_size * dense)
        findings.append(
            Finding(
                detector=SwarmDetector.name,
                subject_kind="group",
                subject_id=gid,
                accounts=members,
                # The group met both thresholds when found; later edges may lapse.
                score=max(score, 1.0),
                event_time=trigger.ts,
                window_start=min(first, trigger.ts),
                window_end=max(last, trigger.ts),
                trigger_event_id=trigger.event_id,
                evidence={
                    "pattern": PATTERNS.get(kind, kind),
                    "size": size,
                    "density": round(density, 4),
                    "edges": edges,
                    "bursts": bursts,
                    "posts": posts,
                    "new_members": new_members,
                    "span_seconds": round(max(last, trigger.ts) - min(first, trigger.ts), 1),
                    "min_size": min_size,
                    "min_density": min_density,
                },
                cooldown_seconds=GATE_COOLDOWN_SECONDS,
            )
        )
    return findings


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
