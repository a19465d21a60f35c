"""``replay --to-kafka`` pacing and keys, with a recording sink and a simulated clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.replay import RejectsFile, publish

T0 = 1793491200.0


class RecordingSink:
    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.sent: list[tuple[float, str, bytes]] = []
        self.flushed = False

    def send(self, key: str, value: bytes) -> None:
        self.sent.append((self.clock[0], key, value))

    def flush(self) -> None:
        self.flushed = True


def capture(tmp_path: Path) -> Path:
    lines = [
        json.dumps(
            {
                "event_id": f"e{n}",
                "type": "like",
                "actor_id": f"a{n % 2}",
                "post_id": "p",
                "author_id": "u",
                "ts": T0 + offset,
            }
        )
        for n, offset in enumerate([0.0, 10.0, 30.0])
    ]
    lines.append(
        json.dumps(
            {
                "event_id": "s",
                "type": "account",
                "account_id": "acc",
                "ts": T0 + 40,
                "created_at": T0 - 100,
            }
        )
    )
    lines.append("garbage")
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(tmp_path: Path, speed: float | None) -> RecordingSink:
    now = [100.0]

    def sleep(seconds: float) -> None:
        assert seconds > 0
        now[0] += seconds

    sink = RecordingSink(now)
    summary = publish(
        [capture(tmp_path)],
        sink,
        speed,
        RejectsFile(tmp_path / "r.jsonl"),
        clock=lambda: now[0],
        sleep=sleep,
    )
    assert summary.events == 4 and summary.rejects["invalid_json"] == 1
    assert sink.flushed
    return sink


@pytest.mark.parametrize(
    ("speed", "expected"),
    [
        (1.0, [100.0, 110.0, 130.0, 140.0]),
        (10.0, [100.0, 101.0, 103.0, 104.0]),
        (None, [100.0, 100.0, 100.0, 100.0]),
    ],
)
def test_pacing_follows_event_time(
    tmp_path: Path, speed: float | None, expected: list[float]
) -> None:
    sink = run(tmp_path, speed)
    assert [round(t, 6) for t, _, _ in sink.sent] == expected


def test_keys_are_the_account_whose_windows_the_event_touches(tmp_path: Path) -> None:
    sink = run(tmp_path, None)
    assert [key for _, key, _ in sink.sent] == ["a0", "a1", "a0", "acc"]
    # The exact bytes of each line are re-published.
    assert json.loads(sink.sent[0][2])["event_id"] == "e0"
    assert (tmp_path / "r.jsonl").read_text().count("garbage") == 1
