"""Running the real pipeline in tests: one detector at a time, in event-time batches."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from detectors.config import Config, load_config
from detectors.pipeline import Pipeline
from schemas.records import Alert, Event


def only(detector: str, **replace: Any) -> Config:
    """The default config with every other detector off, so a detector's tests do not depend
    on the others' tuning; ``replace`` swaps whole sections (e.g. ``burst=BurstConfig(...)``)."""
    cfg = load_config()
    off = {
        f.name: dataclasses.replace(getattr(cfg, f.name), enabled=False)
        for f in dataclasses.fields(cfg)
        if f.name != detector and hasattr(getattr(cfg, f.name), "enabled")
    }
    return dataclasses.replace(cfg, **off, **replace)


def run_batches(pipeline: Pipeline, events: Sequence[Event], batch: int) -> list[Alert]:
    """Feed ``events`` in event-time order (stable for ties), ``batch`` at a time."""
    ordered = sorted(events, key=lambda e: e.ts)
    alerts: list[Alert] = []
    for i in range(0, len(ordered), batch):
        alerts += pipeline.process(ordered[i : i + batch]).alerts
    return alerts
