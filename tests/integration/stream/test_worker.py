"""The live worker on the real broker and Redis: same findings as replay, dead letters, metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from tests.support.livestack import Stack, free_port, metric, scrape, small_capture, stop

pytestmark = pytest.mark.integration


def wait_for_metrics(port: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return scrape(port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def finding(alert: dict) -> tuple:
    """What must agree between live and replay (model evidence may differ in the last digits)."""
    return (
        alert["alert_id"],
        alert["detector"],
        alert["subject_kind"],
        alert["subject_id"],
        tuple(alert["accounts"]),
        alert["event_time"],
    )


def test_live_worker_matches_replay_and_dead_letters_bad_records(
    stack: Stack, tmp_path: Path
) -> None:
    capture = small_capture(tmp_path / "capture.jsonl", bad_lines=False)
    replayed = tmp_path / "replayed.jsonl"
    done = stack.likeguard("replay", str(capture), "--out", str(replayed))
    assert done.returncode == 0, done.stderr
    expected = [json.loads(line) for line in replayed.read_text().splitlines()]
    assert expected, "the capture must produce at least one alert"

    port = free_port()
    worker = stack.start_worker(tmp_path / "worker.log", metrics_port=port)
    try:
        before = wait_for_metrics(port)
        assert metric(before, "likeguard_events_total", type="like", outcome="accepted") == 0
        # Valid events through the same publisher users have, then raw garbage beside them.
        published = stack.likeguard(
            "replay", str(capture), "--to-kafka", stack.env["LIKEGUARD_LIKES_TOPIC"]
        )
        assert published.returncode == 0, published.stderr
        from kafka import KafkaProducer

        producer = KafkaProducer(
            bootstrap_servers=stack.env["LIKEGUARD_BROKER"].split("://", 1)[-1]
        )
        for raw in (b"not json", b'{"type":"like"}', b"\xff\xfe"):
            producer.send(stack.env["LIKEGUARD_LIKES_TOPIC"], key=b"k", value=raw)
        # Account snapshots arrive on their own (compacted) topic, after likes of the account.
        for followers, ts in ((900, 1793491500), (120, 1793491400)):
            snapshot = {
                "event_id": f"acct-{ts}",
                "type": "account",
                "account_id": "bot",
                "ts": ts,
                "created_at": "2025-01-01T00:00:00Z",
                "followers": followers,
            }
            producer.send(
                stack.env["LIKEGUARD_ACCOUNTS_TOPIC"],
                key=b"bot",
                value=json.dumps(snapshot).encode(),
            )
        producer.flush()
        producer.close()

        alerts = stack.read_topic(stack.env["LIKEGUARD_ALERTS_TOPIC"], expect=len(expected))
        dead = stack.read_topic(stack.env["LIKEGUARD_DEAD_LETTER_TOPIC"], expect=3)
        # Wait until the worker has counted everything (metrics lag the alerts slightly).
        deadline = time.monotonic() + 30
        while True:
            after = scrape(port)
            if (
                metric(after, "likeguard_events_total", type="like", outcome="accepted") >= 400
                and metric(after, "likeguard_events_total", type="account", outcome="accepted")
                + metric(after, "likeguard_events_total", type="account", outcome="duplicate")
                >= 2
            ):
                break
            assert time.monotonic() < deadline, after
            time.sleep(0.5)
    finally:
        stop(worker)
        log = (tmp_path / "worker.log").read_text(errors="replace")

    assert sorted(map(finding, alerts)) == sorted(map(finding, expected)), log[-3000:]
    assert sorted(d["reason"] for d in dead) == ["invalid_json", "missing_field", "not_utf8"]
    binary = next(d for d in dead if d["reason"] == "not_utf8")
    assert binary["payload_base64"] == "//4=" and "payload" not in binary
    assert all(d["topic"] == stack.env["LIKEGUARD_LIKES_TOPIC"] for d in dead)

    assert metric(after, "likeguard_events_total", type="like", outcome="accepted") == 400
    assert (
        metric(after, "likeguard_alerts_total", detector="burst", severity=expected[0]["severity"])
        == 1
    )
    assert metric(after, "likeguard_rejects_total", reason="not_utf8") == 1
    assert metric(after, "likeguard_dead_letters_total") == 3
    assert metric(after, "likeguard_batch_size_events_count") >= 1
    assert metric(after, "likeguard_redis_call_duration_seconds_count", operation="windows") >= 1
    assert "Traceback" not in log, log[-3000:]
    # The newer snapshot wins, whichever order the two arrived in.
    stored = redis.Redis.from_url(stack.env["LIKEGUARD_REDIS_URL"]).hgetall(
        f"{stack.env['LIKEGUARD_NAMESPACE']}:acct:bot"
    )
    assert stored[b"followers"] == b"900"
    assert float(stored[b"created_at"]) == 1735689600.0
