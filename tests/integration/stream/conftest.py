"""Fixtures for tests that run the real ``likeguard`` command against the dev stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.livestack import Stack


@pytest.fixture
def stack(broker: str, redis_url: str, run_id: str) -> Iterator[Stack]:
    stack = Stack(run_id)
    stack.env["LIKEGUARD_BROKER"] = broker
    stack.env["LIKEGUARD_REDIS_URL"] = redis_url
    yield stack
    stack.cleanup()
