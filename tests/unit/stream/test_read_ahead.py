"""Replay's read-ahead thread: same batches in the same order, errors surface, early exit stops."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from stream.replay import _read_ahead


def test_batches_arrive_in_order_and_complete() -> None:
    batches = [[n] for n in range(50)]
    assert list(_read_ahead(iter(batches), depth=2)) == batches  # type: ignore[arg-type]


def test_an_error_while_reading_is_raised_to_the_consumer() -> None:
    def failing() -> Iterator[list[int]]:
        yield [1]
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for batch in _read_ahead(failing()):  # type: ignore[arg-type]
            got.append(batch)
    assert got == [[1]]


def test_leaving_early_stops_the_reader() -> None:
    produced = []

    def endless() -> Iterator[list[int]]:
        n = 0
        while True:
            produced.append(n)
            yield [n]
            n += 1

    before = threading.active_count()
    for batch in _read_ahead(endless(), depth=2):  # type: ignore[arg-type]
        if batch == [3]:
            break
    # The reader thread is joined, and stopped after at most depth + 2 batches beyond ours.
    assert threading.active_count() == before
    assert len(produced) <= 4 + 2 + 1
