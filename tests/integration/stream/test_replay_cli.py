"""``likeguard replay`` as a user runs it: files in, alerts and a summary out."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import redis

from tests.support.livestack import Stack, small_capture

pytestmark = pytest.mark.integration


def test_replay_writes_the_burst_alert_and_sets_bad_lines_aside(
    stack: Stack, tmp_path: Path
) -> None:
    capture = small_capture(tmp_path / "capture.jsonl")
    out = tmp_path / "alerts.jsonl"
    done = stack.likeguard("replay", str(capture), "--out", str(out))
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(a["detector"], a["subject_id"]) for a in alerts] == [("burst", "bot")]
    assert alerts[0]["accounts"] == ["bot"]
    rejects = [json.loads(line) for line in Path(f"{out}.rejects.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejects] == ["missing_field", "invalid_json", "not_object"]
    assert rejects[1]["raw"] == "not json"
    assert "replayed 400 events" in done.stderr
    assert "rejected lines: 3" in done.stderr


def test_same_input_twice_gives_identical_alerts_and_leaves_no_state(
    stack: Stack, tmp_path: Path, redis_url: str
) -> None:
    capture = small_capture(tmp_path / "capture.jsonl", bad_lines=False)
    outputs = []
    for n in range(2):
        out = tmp_path / f"alerts{n}.jsonl"
        done = stack.likeguard("replay", str(capture), "--out", str(out))
        assert done.returncode == 0, done.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] and outputs[0]
    leftovers = list(redis.Redis.from_url(redis_url).scan_iter(match="likeguard-replay-*"))
    assert leftovers == []


def test_explicit_namespace_keeps_state_and_gzip_and_kcat_inputs_work(
    stack: Stack, tmp_path: Path, redis_url: str, run_id: str
) -> None:
    plain = small_capture(tmp_path / "capture.jsonl", bad_lines=False).read_text().splitlines()
    half = len(plain) // 2
    gz = tmp_path / "first.jsonl.gz"
    gz.write_bytes(gzip.compress(("\n".join(plain[:half]) + "\n").encode()))
    kcat = tmp_path / "second.json"
    kcat.write_text(
        "\n".join(
            json.dumps(
                {"topic": "likes", "partition": 0, "offset": i, "key": None, "payload": line}
            )
            for i, line in enumerate(plain[half:])
        )
        + "\n"
    )
    namespace = f"lgtest-{run_id}"
    out = tmp_path / "alerts.jsonl"
    done = stack.likeguard(
        "replay", str(kcat), str(gz), "--out", str(out), "--namespace", namespace
    )
    try:
        assert done.returncode == 0, done.stderr
        assert [json.loads(x)["subject_id"] for x in out.read_text().splitlines()] == ["bot"]
        client = redis.Redis.from_url(redis_url)
        assert client.exists(f"{namespace}:w:actor_likes:bot")
        assert f"state kept in Redis under {namespace}" in done.stderr
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{namespace}:*"))
        if keys:
            client.unlink(*keys)


def test_missing_file_and_unreachable_redis_are_clear_errors(stack: Stack, tmp_path: Path) -> None:
    done = stack.likeguard("replay", str(tmp_path / "absent.jsonl"))
    assert done.returncode != 0 and "no such file" in done.stderr
    capture = small_capture(tmp_path / "c.jsonl")
    done = stack.likeguard("replay", str(capture), "--redis-url", "redis://127.0.0.1:1/0")
    assert done.returncode == 2
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in done.stderr
