"""Runtime settings of the drivers: where Kafka and Redis are, topic names, batch sizes.

Every setting has a default that matches the dev stack (``make up``), an environment variable
``LIKEGUARD_<NAME>`` and, on the command line, a flag of the same name.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Settings:
    broker: str = "kafka://127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "likeguard"
    app_id: str = "likeguard"
    likes_topic: str = "likes"
    accounts_topic: str = "accounts"
    alerts_topic: str = "alerts"
    dead_letter_topic: str = "likes.rejects"
    #: The internal one-partition topic through which workers forward likes to the swarm
    #: stage (stream/swarm_stage.py); empty for ``{app_id}-swarm-likes``.
    swarm_topic: str = ""
    #: Partitions for topics the worker creates (existing topics are left as they are).
    partitions: int = 4
    replication_factor: int = 1
    #: 0 disables the Prometheus endpoint.
    metrics_port: int = 9108
    #: Consumer-group session timeout. Short enough that a dead worker's partitions move on
    #: quickly (and Tansu completes a first group join in half of it), long enough for GC pauses.
    session_timeout_seconds: float = 10.0
    #: A batch is taken from Kafka when it has ``batch_size`` records or ``batch_timeout_seconds``
    #: after the worker asked for it, whichever comes first. Under load batches fill up (the
    #: records wait in Faust's buffer while the previous batch is in the pipeline), so the
    #: per-batch cost is shared by many events; when traffic is light the timeout bounds how
    #: long a record waits for its batch (up to all of it: Faust counts from when it asked,
    #: not from the first record). 0.1 s took ~0.07 s off the median alert latency at half
    #: the worker's maximum rate; a full batch under load comes sooner anyway.
    batch_size: int = 1000
    batch_timeout_seconds: float = 0.1
    #: How long the broker may hold a fetch request open waiting for records (Kafka's
    #: ``fetch.max.wait.ms``). Faust hard-codes 1.5 s, and some brokers (Tansu) hold a fetch
    #: that long even while records arrive, which puts ~1 s under every alert's latency. A
    #: shorter wait costs an idle worker a few more fetch requests per second.
    fetch_max_wait_seconds: float = 0.1
    #: The event-time merge of a worker's partitions (:mod:`stream.merge`): a partition that
    #: has read up to the broker's high watermark holds nothing back; one that is not caught
    #: up but has delivered nothing (and whose high watermark has not risen) for this long
    #: stops holding the others back too (time the worker spends waiting for detection does
    #: not count). Bounds how long a quiet or stuck partition can delay alerts.
    merge_idle_seconds: float = 0.5
    #: The same for a partition that has delivered records but is known to have more (its
    #: offset is below the broker's high watermark): those records exist, so it holds the
    #: others back this long before the merge gives up on it. Consumers do not deliver
    #: partitions evenly; a shorter wait processes a backlog out of event-time order.
    merge_behind_idle_seconds: float = 5.0
    #: Records the merge may hold; beyond it the oldest go on regardless of the watermark
    #: (``likeguard_merge_forced_releases_total``), so a backlog cannot grow memory unbounded.
    merge_max_held: int = 10_000
    #: How long the swarm stage (stream/swarm_stage.py) waits for a source partition that
    #: has not said it is caught up and has forwarded nothing for that long (or nothing since
    #: the stage started). Well beyond the session timeout: when a worker dies, its
    #: partitions' likes come again only once the group has noticed (the session timeout),
    #: rebalanced and the new owner has read them, and going on without them takes the other
    #: workers' likes out of event-time order (a loaded two-worker run took 16 s). Only a
    #: dead or stuck worker makes the stage wait: live workers report every 0.5 s.
    swarm_stage_wait_seconds: float = 60.0
    #: Likes the swarm stage may hold while it waits (about 600 bytes each); beyond it the
    #: oldest go on out of event-time order. Enough for the wait at 1,500 likes/s.
    swarm_stage_max_held: int = 100_000
    #: Detection settings file (see detectors/defaults.toml); empty for the defaults.
    config: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``LIKEGUARD_*`` variables, then non-``None`` ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(f"LIKEGUARD_{field.name.upper()}")
            if raw is not None and raw != "":
                values[field.name] = _convert(field.name, raw, type(field.default))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def swarm_stage_topic(self) -> str:
        """:attr:`swarm_topic`, or the one derived from the consumer group.

        >>> Settings(app_id="lg").swarm_stage_topic, Settings(swarm_topic="s").swarm_stage_topic
        ('lg-swarm-likes', 's')
        """
        return self.swarm_topic or f"{self.app_id}-swarm-likes"

    @property
    def bootstrap_servers(self) -> str:
        """The broker list without the ``kafka://`` scheme, for kafka-python clients."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(";"))


def _convert(name: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise SystemExit(
            f"LIKEGUARD_{name.upper()}={raw!r} is not a valid {kind.__name__}"
        ) from None
