"""Shared fixtures: real Redis and a real Kafka-protocol broker (``make up`` starts both).

Integration tests never imitate either service. Each test gets its own Redis namespace (and,
for Kafka, its own topic names and consumer group), so tests can run against a shared stack
and leave nothing behind.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
import redis

from detectors.state import RedisState

REDIS_URL = os.environ.get("LIKEGUARD_REDIS_URL", "redis://127.0.0.1:6379/0")
BROKER = os.environ.get("LIKEGUARD_BROKER", "kafka://127.0.0.1:9092")


def _broker_address() -> tuple[str, int]:
    host, _, port = BROKER.split("://", 1)[-1].split(",")[0].rpartition(":")
    return host, int(port)


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as err:
        pytest.fail(f"Redis at {REDIS_URL} does not answer ({err}); run `make up` first")
    return REDIS_URL


@pytest.fixture
def state(redis_url: str) -> Iterator[RedisState]:
    """A RedisState on a fresh namespace, deleted after the test."""
    handle = RedisState.from_url(redis_url, namespace=f"lgtest-{uuid.uuid4().hex[:10]}")
    yield handle
    handle.delete_namespace()


@pytest.fixture(scope="session")
def broker() -> str:
    host, port = _broker_address()
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as err:
        pytest.fail(f"Kafka broker at {host}:{port} does not answer ({err}); run `make up` first")
    return BROKER


@pytest.fixture
def run_id() -> str:
    """A short unique id for topic, group and namespace names of one test."""
    return uuid.uuid4().hex[:10]
