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
    """Create missing topics; returns the names created. Existing topics are left alone."""
    wanted = {
        settings.likes_topic: {},
        settings.accounts_topic: {"cleanup.policy": "compact"},
        settings.alerts_topic: {},
        settings.dead_letter_topic: {},
        **{name: {} for name in extra},
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
            NewTopic(name, settings.partitions, settings.replication_factor, topic_configs=cfg)
            for name, cfg in wanted.items()
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
