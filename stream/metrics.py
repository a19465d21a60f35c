"""Prometheus metrics of the live worker: aggregates only, never an account or post id.

Names follow the Prometheus conventions (base units, ``_total`` for counters); the alert rules
and dashboard in ``deploy/`` are written against exactly these.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

from detectors.pipeline import BatchResult
from schemas.records import Alert
from schemas.validate import REJECT_REASONS

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000)
# Sub-second for the live target (event to alert p99 < 1 s), then up to the hours a backlog or
# a replayed capture can be behind (LikeguardEventLagHigh pages at 15 minutes).
_LAG_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class Metrics:
    """The worker's metrics, registered on ``registry`` (a fresh one in tests)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        self.registry = reg
        self.events = Counter(
            "likeguard_events",
            "Events consumed, by type and outcome.",
            ["type", "outcome"],
            registry=reg,
        )
        self.rejects = Counter(
            "likeguard_rejects",
            "Records that failed validation, by reason.",
            ["reason"],
            registry=reg,
        )
        self.dead_letters = Counter(
            "likeguard_dead_letters", "Records published to the dead-letter topic.", registry=reg
        )
        self.alerts = Counter(
            "likeguard_alerts",
            "Alerts published, by detector and severity.",
            ["detector", "severity"],
            registry=reg,
        )
        self.event_time_lag = Gauge(
            "likeguard_event_time_lag_seconds",
            "Wall clock minus the newest event time of the last processed batch, when it ended.",
            registry=reg,
        )
        # The gauge above keeps its last value when the worker stops processing; with the
        # event time itself, time() minus it goes on growing in PromQL.
        self.newest_event_time = Gauge(
            "likeguard_newest_event_timestamp_seconds",
            "Event time (unix seconds) of the newest event of the last processed batch.",
            registry=reg,
        )
        self.batch_event_time_lag = Histogram(
            "likeguard_batch_event_time_lag_seconds",
            "Per processed batch: wall clock when it ended minus its newest event time.",
            buckets=_LAG_BUCKETS,
            registry=reg,
        )
        self.last_processed = Gauge(
            "likeguard_last_processed_timestamp_seconds",
            "Unix time when the worker last finished a batch.",
            registry=reg,
        )
        self.processing_latency = Histogram(
            "likeguard_processing_latency_seconds",
            "From a batch being taken from Kafka to its alerts published and records acked"
            " (includes waiting for the previous batch).",
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.batch_size = Histogram(
            "likeguard_batch_size_events",
            "Events per processed batch.",
            buckets=_BATCH_BUCKETS,
            registry=reg,
        )
        self.redis_latency = Histogram(
            "likeguard_redis_call_duration_seconds",
            "Redis calls, by operation.",
            ["operation"],
            buckets=_REDIS_BUCKETS,
            registry=reg,
        )
        self.redis_errors = Counter(
            "likeguard_redis_errors",
            "Failed Redis calls, by operation.",
            ["operation"],
            registry=reg,
        )
        # The event-time merge (stream/merge.py): one per agent, summed by merge_held().
        self._merges: list[Callable[[], int]] = []
        self.merge_held = Gauge(
            "likeguard_merge_held_records",
            "Records taken from Kafka and held by the event-time merge, not yet in a batch.",
            registry=reg,
        )
        self.merge_held.set_function(lambda: float(sum(held() for held in self._merges)))
        self.merge_forced = Counter(
            "likeguard_merge_forced_releases",
            "Records the event-time merge let go before the watermark allowed, because it held"
            " too many (LIKEGUARD_MERGE_MAX_HELD; the swarm stage's:"
            " LIKEGUARD_SWARM_STAGE_MAX_HELD).",
            registry=reg,
        )
        self.merge_late = Counter(
            "likeguard_merge_late_records",
            "Records that reached the event-time merge older than a record it had already let go"
            " (processed out of event-time order).",
            registry=reg,
        )
        self.swarm_stage_likes = Counter(
            "likeguard_swarm_stage_likes",
            "Likes the swarm stage (stream/swarm_stage.py) has taken through the cross-account"
            " detectors, redeliveries included; only the worker that holds the stage's"
            " partition counts.",
            registry=reg,
        )
        self.swarm_stage_lag = Gauge(
            "likeguard_swarm_stage_event_time_lag_seconds",
            "Wall-clock time minus the event time of the newest like through the swarm stage.",
            registry=reg,
        )
        for reason in REJECT_REASONS:  # export zeros, so rate() works from the first scrape
            self.rejects.labels(reason)

    def watch_merge(self, held: Callable[[], int]) -> None:
        """Add ``held()``, records an event-time merge holds, to the held-records gauge."""
        self._merges.append(held)

    def observe_redis(self, operation: str, seconds: float, failed: bool) -> None:
        """A :data:`detectors.state.RedisObserver`."""
        self.redis_latency.labels(operation).observe(seconds)
        if failed:
            self.redis_errors.labels(operation).inc()

    def observe_reject(self, reason: str, event_type: str = "unknown") -> None:
        self.rejects.labels(reason).inc()
        self.events.labels(event_type, "rejected").inc()

    def observe_batch(self, result: BatchResult, size: int, started: float) -> None:
        """After a batch is done (alerts published, records acked).

        ``started`` is the ``time.monotonic()`` when the batch was taken from Kafka.
        """
        for (event_type, outcome), n in result.outcomes.items():
            self.events.labels(event_type, outcome).inc(n)
        for alert in result.alerts:
            self.alerts.labels(alert.detector, alert.severity).inc()
        now = time.time()
        if result.newest_event_time is not None:
            lag = max(0.0, now - result.newest_event_time)
            self.event_time_lag.set(lag)
            self.batch_event_time_lag.observe(lag)
            self.newest_event_time.set(result.newest_event_time)
        self.last_processed.set(now)
        self.processing_latency.observe(time.monotonic() - started)
        self.batch_size.observe(size)

    def observe_swarm_stage(self, alerts: Sequence[Alert], newest: float, likes: int) -> None:
        """After a swarm-stage batch of ``likes`` likes is done (its alerts published)."""
        for alert in alerts:
            self.alerts.labels(alert.detector, alert.severity).inc()
        self.swarm_stage_likes.inc(likes)
        now = time.time()
        self.swarm_stage_lag.set(max(0.0, now - newest))
        self.last_processed.set(now)


def serve(port: int, registry: CollectorRegistry = REGISTRY) -> None:
    """Serve ``/metrics`` on ``port`` (all interfaces, so Prometheus in a container reaches it)."""
    start_http_server(port, registry=registry)
