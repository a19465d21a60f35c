"""The baseline: a bare Faust agent that only takes batches off the likes topic and acks them.

Configured exactly like the worker in ``stream/app.py`` (same ``LIKEGUARD_*`` settings: broker,
session timeout, heartbeat, fetch wait, batch size and timeout, raw serialisers, earliest offset
reset: it builds its app with ``new_faust_app``), so the ratio of the two measures what
detection costs, not what Faust costs. It exports the two
metrics the benchmark polls under the worker's names, so one poller reads both::

    LIKEGUARD_LIKES_TOPIC=t LIKEGUARD_APP_ID=g LIKEGUARD_METRICS_PORT=9200 \\
        python -m bench.bare_agent
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import faust
from faust.types import EventT
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from stream.app import RAW_TOPIC, new_faust_app
from stream.config import Settings


def create_bare_app(settings: Settings, registry: CollectorRegistry) -> faust.App:
    """A Faust app with one agent that counts and acks batches, nothing else."""
    # The worker's own consumer settings, so the two runs differ only in what the agent does.
    app = new_faust_app(settings)
    likes_topic = app.topic(settings.likes_topic, **RAW_TOPIC)
    events = Counter("likeguard_events", "Records taken and acked.", registry=registry)
    last_processed = Gauge(
        "likeguard_last_processed_timestamp_seconds",
        "Unix time when the agent last finished a batch.",
        registry=registry,
    )

    lag = Gauge(
        "likeguard_event_time_lag_seconds",
        "Wall clock minus the newest record timestamp of the last batch.",
        registry=registry,
    )

    def done(batch: Sequence[EventT]) -> None:
        now = time.time()
        events.inc(len(batch))
        last_processed.set(now)
        # Record timestamps are the producer's send times: this is the transport's delay.
        newest = max((e.message.timestamp or 0.0 for e in batch), default=0.0)
        if newest:
            lag.set(max(0.0, now - newest))

    @app.agent(likes_topic, name="bench.bare")  # type: ignore[arg-type]
    async def consume(stream: faust.Stream) -> None:
        # Faust acks a batch's events when the stream moves on to the next one.
        async for batch in stream.take_events(
            settings.batch_size, within=settings.batch_timeout_seconds
        ):
            done(batch)

    return app


def main() -> int:
    settings = Settings.from_env()
    registry = CollectorRegistry()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=registry)
    app = create_bare_app(settings, registry)
    worker = faust.Worker(app, loglevel="warning")
    worker.execute_from_commandline()  # returns only through SystemExit
    return 0


if __name__ == "__main__":
    sys.exit(main())
