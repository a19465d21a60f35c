"""The dev stack as the benchmark uses it: unique names per measurement, processes, clean-up.

Every topic, consumer group and Redis namespace a run creates starts with one run prefix
(``bench-<hex>``), so :meth:`BenchStack.cleanup` removes exactly what this run made and
nothing of the other people sharing the broker and Redis.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from bench.machine import REPO_ROOT
from bench.stats import Sample, by_label, parse_prometheus
from stream.config import Settings

#: ``python -m`` modules of the two kinds of consumer measured.
WORKER_MODULE = "stream.cli"
BARE_MODULE = "bench.bare_agent"


class BenchError(RuntimeError):
    """A measurement could not be taken (the message says which and why)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Names:
    """The ``LIKEGUARD_*`` names of one measurement (its own group, namespace and outputs)."""

    prefix: str
    likes_topic: str

    @property
    def app_id(self) -> str:
        return f"{self.prefix}-app"

    @property
    def namespace(self) -> str:
        return f"{self.prefix}-ns"

    @property
    def alerts_topic(self) -> str:
        return f"{self.prefix}-alerts"

    def env(self) -> dict[str, str]:
        return {
            "LIKEGUARD_LIKES_TOPIC": self.likes_topic,
            "LIKEGUARD_ACCOUNTS_TOPIC": f"{self.prefix}-accounts",
            "LIKEGUARD_ALERTS_TOPIC": self.alerts_topic,
            "LIKEGUARD_DEAD_LETTER_TOPIC": f"{self.prefix}-likes.rejects",
            "LIKEGUARD_APP_ID": self.app_id,
            "LIKEGUARD_NAMESPACE": self.namespace,
        }


class BenchStack:
    """Broker and Redis of the dev stack, plus the processes and names this run created."""

    def __init__(self, settings: Settings, work_dir: Path, partitions: int = 4) -> None:
        self.settings = settings
        self.work_dir = work_dir
        self.partitions = partitions
        self.run_prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.redis = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
        self._app_ids: list[str] = []
        self._processes: list[subprocess.Popen[bytes]] = []

    # -- names and environment -------------------------------------------------------------

    def names(self, label: str, likes_topic: str | None = None) -> Names:
        prefix = f"{self.run_prefix}-{label}"
        names = Names(prefix, likes_topic or f"{prefix}-likes")
        self._app_ids.append(names.app_id)
        return names

    def env(self, names: Names, **extra: str) -> dict[str, str]:
        """The environment of a child process: this stack, these names, the repo importable."""
        pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
        return {
            **os.environ,
            "PYTHONPATH": pythonpath,
            "LIKEGUARD_BROKER": self.settings.broker,
            "LIKEGUARD_REDIS_URL": self.settings.redis_url,
            "LIKEGUARD_PARTITIONS": str(self.partitions),
            "LIKEGUARD_METRICS_PORT": "0",
            **names.env(),
            **extra,
        }

    # -- processes ---------------------------------------------------------------------------

    def likeguard(
        self, names: Names, *args: str, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Run ``likeguard ARGS`` to completion (in the work directory)."""
        try:
            return subprocess.run(
                [sys.executable, "-m", "stream.cli", *args],
                env=self.env(names),
                cwd=self.work_dir,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise BenchError(f"likeguard {args[0]} did not finish in {timeout:.0f} s") from err

    def spawn(self, module: str, names: Names, log: Path, *args: str, **extra: str) -> Process:
        """Start ``python -m module ARGS`` in its own session, output to ``log``."""
        with log.open("ab") as handle:
            popen = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                env=self.env(names, **extra),
                cwd=self.work_dir,  # Faust writes its <app id>-data folder here
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._processes.append(popen)
        return Process(popen, log)

    def stop_all(self) -> None:
        stop_all(self._processes)
        self._processes.clear()

    # -- clean-up ----------------------------------------------------------------------------

    def admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(
            bootstrap_servers=self.settings.bootstrap_servers,
            client_id="likeguard-bench",
            request_timeout_ms=15000,
        )

    def delete_namespace(self, namespace: str) -> int:
        """Delete every key of ``namespace``; returns how many."""
        return self._delete_matching(f"{namespace}:*")

    def _delete_matching(self, pattern: str) -> int:
        deleted = 0
        batch: list[bytes] = []
        for key in self.redis.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(self.redis.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(self.redis.unlink(*batch))
        return deleted

    def cleanup(self) -> list[str]:
        """Stop our processes; delete our topics, groups and Redis keys. Returns problems."""
        problems: list[str] = []
        self.stop_all()
        try:
            self._delete_matching(f"{self.run_prefix}-*")  # every namespace starts with it
        except redis.RedisError as err:
            problems.append(f"Redis keys under {self.run_prefix}*: {err}")
        try:
            admin = self.admin()
        except KafkaError as err:
            return [*problems, f"broker: {err}"]
        try:
            ours = [t for t in admin.list_topics() if t.startswith(self.run_prefix)]
            if ours:
                admin.delete_topics(ours)
            with contextlib.suppress(KafkaError, NotImplementedError, ValueError):
                # Tansu keeps committed offsets per group; removal is best effort.
                admin.delete_groups(self._app_ids)
        except KafkaError as err:
            problems.append(f"topics {self.run_prefix}*: {err}")
        finally:
            admin.close()
        return problems


@dataclass
class Process:
    """A child process of the benchmark and its log."""

    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def failed(self) -> bool:
        """A traceback in the log: an agent crashed (Faust may keep the process alive)."""
        try:
            return b"Traceback" in self.log.read_bytes()
        except OSError:
            return False

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def rss_bytes(self) -> int | None:
        """Resident memory now: VmRSS of the worker and of its children (the detection
        process), from /proc."""
        total = _vm_rss(self.pid)
        if total is None:
            return None
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            children = []
        for child in children:
            total += _vm_rss(int(child)) or 0
        return total


def _vm_rss(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def stop_all(popens: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """Stop several children at once (their shutdowns overlap instead of adding up)."""
    for popen in popens:
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
    for popen in popens:
        stop(popen, timeout)


def stop(popen: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM our child's process group (a clean Faust shutdown), SIGKILL if it hangs."""
    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()


def metrics_text(port: int, timeout: float = 2.0) -> str | None:
    """A process's /metrics exposition, or None if it does not serve (yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            return str(r.read().decode())
    except (OSError, urllib.error.URLError):
        return None


def worker_figures(port: int) -> dict[str, Any]:
    """The worker's own account of where batch time went (for the report, not the verdicts).

    Means over the run: events per batch, seconds per batch (taken from Kafka to alerts
    published), and Redis seconds per batch by operation (the Lua scripts and direct calls).
    """
    text = metrics_text(port)
    if text is None:
        return {}
    totals = parse_prometheus(text)
    batches = totals.get("likeguard_batch_size_events_count", 0.0)
    if not batches:
        return {}
    redis_seconds = by_label(text, "likeguard_redis_call_duration_seconds_sum", "operation")
    redis_calls = by_label(text, "likeguard_redis_call_duration_seconds_count", "operation")
    return {
        "batches": batches,
        "events_per_batch": totals.get("likeguard_batch_size_events_sum", 0.0) / batches,
        "seconds_per_batch": totals.get("likeguard_processing_latency_seconds_sum", 0.0) / batches,
        "redis_seconds_per_batch": {op: t / batches for op, t in redis_seconds.items()},
        "redis_calls_per_batch": {op: n / batches for op, n in redis_calls.items()},
    }


def scrape(port: int, timeout: float = 2.0) -> Sample | None:
    """Events processed and last batch time from a worker's /metrics; None if not serving yet."""
    text = metrics_text(port, timeout)
    if text is None:
        return None
    values = parse_prometheus(text)
    return Sample(
        events=values.get("likeguard_events_total", 0.0),
        last_processed=values.get("likeguard_last_processed_timestamp_seconds", 0.0),
        lag=values.get("likeguard_event_time_lag_seconds", 0.0),
        stage_likes=values.get("likeguard_swarm_stage_likes_total", 0.0),
    )


def wait_until(predicate: Callable[[], bool], timeout: float, every: float = 0.1) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False
