"""Drive the real ``likeguard`` command against the dev stack, as a user would."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer

T0 = 1793491200.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def small_capture(path: Path, bad_lines: bool = True) -> Path:
    """Organic likes from 60 accounts plus one account liking 40 posts in 40 seconds.

    The organic side is random (seeded): 60 users each liking 6 of 300 posts at random times
    over two hours, so no group of them looks like a lockstep farm.
    """
    rng = random.Random(7)
    events: list[dict[str, Any]] = []
    for i in range(60):
        for k, post in enumerate(rng.sample(range(300), 6)):
            events.append(
                {
                    "event_id": f"o{i}-{k}",
                    "type": "like",
                    "actor_id": f"user{i}",
                    "post_id": f"p{post}",
                    "author_id": f"author{post % 50}",
                    "ts": round(T0 + rng.uniform(0, 7200), 3),
                }
            )
    events += [
        {
            "event_id": f"b{k}",
            "type": "like",
            "actor_id": "bot",
            "post_id": f"q{k}",
            "author_id": "seller",
            "ts": T0 + 900 + k,
        }
        for k in range(40)
    ]
    events.sort(key=lambda e: e["ts"])
    lines = [json.dumps(e) for e in events]
    if bad_lines:
        lines[10:10] = ['{"type": "like", "event_id": "x"}', "not json", "[1, 2]"]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Stack:
    """Topic, group and namespace names of one test, as ``LIKEGUARD_*`` variables."""

    run_id: str
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        prefix = f"t{self.run_id}"
        self.env = {
            **os.environ,
            "LIKEGUARD_LIKES_TOPIC": f"{prefix}-likes",
            "LIKEGUARD_ACCOUNTS_TOPIC": f"{prefix}-accounts",
            "LIKEGUARD_ALERTS_TOPIC": f"{prefix}-alerts",
            "LIKEGUARD_DEAD_LETTER_TOPIC": f"{prefix}-likes.rejects",
            "LIKEGUARD_APP_ID": f"{prefix}-app",
            "LIKEGUARD_NAMESPACE": f"{prefix}-ns",
            "LIKEGUARD_PARTITIONS": "4",
        }

    def cleanup(self) -> None:
        """Delete this stack's Redis namespace."""
        import redis

        client = redis.Redis.from_url(self.env["LIKEGUARD_REDIS_URL"])
        keys = list(client.scan_iter(match=f"{self.env['LIKEGUARD_NAMESPACE']}:*", count=1000))
        if keys:
            client.unlink(*keys)

    def likeguard(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stream.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start_worker(self, log: Path, metrics_port: int = 0) -> subprocess.Popen[bytes]:
        env = {**self.env, "LIKEGUARD_METRICS_PORT": str(metrics_port)}
        with log.open("ab") as handle:
            return subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "worker", "--loglevel", "warning"],
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=log.parent,  # Faust writes its {app id}-data directory here, not in the repo
            )

    def read_topic(self, topic: str, expect: int, timeout: float = 90.0) -> list[dict[str, Any]]:
        """Records of ``topic`` (JSON values) until ``expect`` arrived or ``timeout`` passed."""
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=self.env.get("LIKEGUARD_BROKER", "kafka://127.0.0.1:9092").split(
                "://", 1
            )[-1],
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=1000,
        )
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and len(records) < expect:
                for message in consumer:
                    records.append(json.loads(message.value))
        finally:
            consumer.close()
        return records


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0.0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        sample_name, _, sample_labels = sample.partition("{")
        got = ",".join(sorted(sample_labels.rstrip("}").split(","))) if sample_labels else ""
        if sample_name == name and got == wanted:
            return float(value)
    return 0.0


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Offset after the last record of each partition, found by reading to the end.

    Not ``KafkaConsumer.end_offsets``: Tansu answers ListOffsets(latest) with the base offset
    of the last record batch rather than the high watermark, which undercounts.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
        auto_offset_reset="earliest",
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        reported = consumer.end_offsets(partitions)
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, max(0, reported[tp] - 1))
        ends = {tp.partition: reported[tp] for tp in partitions}
        for record in consumer:
            ends[record.partition] = max(ends[record.partition], record.offset + 1)
    finally:
        consumer.close()
    return ends


def group_lag(bootstrap: str, group: str, topic: str, ends: dict[int, int]) -> int | None:
    """Records of ``topic`` not yet committed by ``group`` (None: nothing committed yet)."""
    from kafka import KafkaConsumer, TopicPartition

    # A consumer that never subscribes does not join the group; it only reads its offsets.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        committed = {p: consumer.committed(TopicPartition(topic, p)) for p in ends}
    finally:
        consumer.close()
    if all(offset is None for offset in committed.values()):
        return None
    return sum(end - (committed[p] or 0) for p, end in ends.items())


def wait_caught_up(stack: Stack, timeout: float = 180) -> None:
    """Until the worker group has committed every record of the likes topic, and then every
    record forwarded to the swarm stage (which commits one once its alerts are out; it runs
    behind detection, more so on a loaded machine)."""
    bootstrap = stack.env["LIKEGUARD_BROKER"].split("://", 1)[-1]
    group = stack.env["LIKEGUARD_APP_ID"]
    topic = stack.env["LIKEGUARD_LIKES_TOPIC"]
    ends = end_offsets(bootstrap, topic)
    deadline = time.monotonic() + timeout
    lag: int | None = None
    while time.monotonic() < deadline:
        lag = group_lag(bootstrap, group, topic, ends)
        if lag == 0:
            break
        time.sleep(1)
    else:
        raise AssertionError(f"worker group did not catch up in {timeout} s (lag {lag})")
    wait_stage_caught_up(stack, deadline)


def wait_stage_caught_up(stack: Stack, deadline: float) -> None:
    """Until the swarm stage has committed every record forwarded to it so far.

    Its topic is never silent while a worker runs (progress reports every 0.5 s), so it
    cannot be read to its end. Every forwarded record is there before its source records are
    committed, and reports follow: a second after that, the broker's ListOffsets answer
    (Tansu: the base offset of the last record batch, a report batch by then) lies past them,
    and the stage has done them once it has committed past that offset.
    """
    from kafka import KafkaConsumer, TopicPartition

    bootstrap = stack.env["LIKEGUARD_BROKER"].split("://", 1)[-1]
    group = stack.env["LIKEGUARD_APP_ID"]
    tp = TopicPartition(stack.env.get("LIKEGUARD_SWARM_TOPIC") or f"{group}-swarm-likes", 0)
    time.sleep(1.0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        if not consumer.partitions_for_topic(tp.topic):
            return  # no stage (per-account detectors only) and no topic
        target = consumer.end_offsets([tp])[tp]
        committed: int | None = None
        while target and time.monotonic() < deadline:
            committed = consumer.committed(tp)
            if committed is not None and committed > target:
                return
            time.sleep(1)
    finally:
        consumer.close()
    if target:
        raise AssertionError(f"the swarm stage did not commit past {target} (at {committed})")
