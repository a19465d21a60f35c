"""Create the topics likeguard reads and writes, with the right settings, if they are missing."""

from __future__ import annotations

import logging

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream.config import Settings

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The broker cannot be reached or refused a request."""


def ensure_topics(settings: Settings, extra: tuple[str, ...] = ()) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left alone.

    All get ``settings.partitions`` partitions but the swarm stage's, which has one: the
    stage must see every worker's likes in one process (stream/swarm_stage.py).
    """
    n = settings.partitions
    wanted: dict[str, tuple[int, dict[str, str]]] = {
        settings.likes_topic: (n, {}),
        settings.accounts_topic: (n, {"cleanup.policy": "compact"}),
        settings.alerts_topic: (n, {}),
        settings.dead_letter_topic: (n, {}),
        settings.swarm_stage_topic: (1, {}),
        **{name: (n, {}) for name in extra},
    }
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers,
            client_id="likeguard-admin",
            request_timeout_ms=15000,
        )
    except KafkaError as err:
        raise BrokerError(f"cannot reach Kafka at {settings.bootstrap_servers}: {err}") from None
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, partitions, settings.replication_factor, topic_configs=cfg)
            for name, (partitions, cfg) in wanted.items()
            if name not in existing
        ]
        created: list[str] = []
        for topic in missing:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:  # another worker won the race
                pass
        if created:
            log.info("created topics %s", ", ".join(created))
        return created
    except KafkaError as err:
        raise BrokerError(f"Kafka at {settings.bootstrap_servers} refused: {err}") from None
    finally:
        admin.close()
