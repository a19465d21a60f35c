"""A worker whose Redis is down keeps its batch and retries: nothing is skipped or lost.

The worker starts against a Redis port where nothing listens yet; events are produced; then a
real Redis server starts on that port, and every event must be processed and the alert
published. While Redis is down the worker must commit no offset: it takes further batches
meanwhile, but acks none of them before the pipeline has processed it.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.livestack import (
    Stack,
    end_offsets,
    free_port,
    group_lag,
    metric,
    scrape,
    small_capture,
    stop,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def redis_server_binary() -> str:
    spec = importlib.util.spec_from_file_location("devstack", ROOT / "scripts" / "devstack.py")
    assert spec is not None and spec.loader is not None
    devstack = importlib.util.module_from_spec(spec)
    sys.modules["devstack"] = devstack  # dataclasses look their module up while defining
    spec.loader.exec_module(devstack)
    path, _ = devstack.resolve_redis_server(install_missing=False)
    return str(path)


def test_worker_waits_out_a_redis_outage_without_losing_events(
    stack: Stack, tmp_path: Path
) -> None:
    redis_port = free_port()
    shared_redis = stack.env["LIKEGUARD_REDIS_URL"]
    stack.env["LIKEGUARD_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    metrics_port = free_port()
    capture = small_capture(tmp_path / "capture.jsonl", bad_lines=False)
    # Small batches, so that the worker has taken several while the first one waits on Redis.
    stack.env["LIKEGUARD_BATCH_SIZE"] = "50"
    worker = stack.start_worker(tmp_path / "worker.log", metrics_port=metrics_port)
    server: subprocess.Popen[bytes] | None = None
    try:
        published = stack.likeguard(
            "replay", str(capture), "--to-kafka", stack.env["LIKEGUARD_LIKES_TOPIC"]
        )
        assert published.returncode == 0, published.stderr
        # Let the worker take a batch and fail on it a few times: three retries take 3.5 s,
        # longer than Faust's commit interval (2.8 s), so an early ack would be committed.
        deadline = time.monotonic() + 60
        log = tmp_path / "worker.log"
        while log.read_text(errors="replace").count("retrying") < 3:
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        assert (
            metric(scrape(metrics_port), "likeguard_events_total", type="like", outcome="accepted")
            == 0
        )
        bootstrap = stack.env["LIKEGUARD_BROKER"].split("://", 1)[-1]
        ends = end_offsets(bootstrap, stack.env["LIKEGUARD_LIKES_TOPIC"])
        assert sum(ends.values()) == 400
        lag = group_lag(
            bootstrap, stack.env["LIKEGUARD_APP_ID"], stack.env["LIKEGUARD_LIKES_TOPIC"], ends
        )
        assert lag in (None, 400), f"offsets committed while Redis was down (lag {lag})"

        server = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        alerts = stack.read_topic(stack.env["LIKEGUARD_ALERTS_TOPIC"], expect=1, timeout=90)
        # This test is about the outage: the burst finding stands in for all of them.
        alerts = [a for a in alerts if a["detector"] == "burst"]
        deadline = time.monotonic() + 60
        while (
            metric(scrape(metrics_port), "likeguard_events_total", type="like", outcome="accepted")
            < 400
        ):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        text = scrape(metrics_port)
    finally:
        stop(worker)
        stack.env["LIKEGUARD_REDIS_URL"] = shared_redis
        if server is not None:
            server.terminate()
            server.wait(10)
    assert [a["subject_id"] for a in alerts] == ["bot"]
    assert metric(text, "likeguard_events_total", type="like", outcome="accepted") == 400
    assert metric(text, "likeguard_events_total", type="like", outcome="duplicate") == 0
