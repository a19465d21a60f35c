"""Replay throughput: ``likeguard replay`` on a capture, against reading + decoding it alone."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.stack import BenchError, BenchStack, Names
from bench.stats import rate
from schemas.records import LikeEvent
from stream.capture import Placed, read_capture

Progress = Callable[[str], None]

#: ``replayed 29,815 events from 1 file(s) in 24.7 s (1,205 events/s), …`` (stream/replay.py).
SUMMARY = re.compile(r"replayed ([\d,]+) events from \d+ file\(s\) in ([\d.]+) s")


def likes_in(capture: Path) -> int:
    """Valid like events (not unlikes) in ``capture``: what a worker's swarm stage takes."""
    return sum(
        1
        for item in read_capture(capture)
        if isinstance(item, Placed)
        and isinstance(item.event, LikeEvent)
        and item.event.type == "like"
    )


def head_of(capture: Path, events: int | None, out: Path) -> tuple[Path, int]:
    """The first ``events`` lines of ``capture`` (all when None), and how many there are."""
    count = 0
    if events is None:
        with gzip.open(capture, "rb") as handle:
            count = sum(1 for line in handle if line.strip())
        return capture, count
    with gzip.open(capture, "rb") as src, out.open("wb") as dst:
        for line in src:
            if not line.strip():
                continue
            if count >= events:
                break
            dst.write(line)
            count += 1
    return out, count


@dataclass
class ReplayResult:
    events: int
    #: As the replay's own summary reports it: pipeline time, without interpreter start-up.
    seconds: float
    events_per_second: float
    #: Process start to exit, start-up and namespace clean-up included.
    wall_seconds: float
    alerts: int


def parse_summary(stderr: str) -> tuple[int, float]:
    """Events and seconds from a replay summary.

    >>> parse_summary("replayed 29,815 events from 1 file(s) in 24.7 s (1,205 events/s)")
    (29815, 24.7)
    """
    match = SUMMARY.search(stderr)
    if match is None:
        raise ValueError("no replay summary found")
    return int(match.group(1).replace(",", "")), float(match.group(2))


def measure_replay(
    stack: BenchStack,
    names: Names,
    capture: Path,
    progress: Progress,
    timeout: float = 1800.0,
) -> ReplayResult:
    """``likeguard replay CAPTURE --namespace NS``: the state stays for the memory figure."""
    alerts = stack.work_dir / f"{names.prefix}-alerts.jsonl"
    cmd = [
        "-m",
        "stream.cli",
        "replay",
        str(capture),
        "--out",
        str(alerts),
        "--no-progress",
        "--namespace",
        names.namespace,
    ]
    started = time.monotonic()
    log = stack.work_dir / f"{names.prefix}.log"
    with log.open("w") as handle:
        popen = subprocess.Popen(
            [sys.executable, *cmd],
            env=stack.env(names),
            cwd=stack.work_dir,
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )
        try:
            while popen.poll() is None:
                if time.monotonic() - started > timeout:
                    popen.kill()
                    popen.wait()
                    raise BenchError(f"likeguard replay did not finish in {timeout:.0f} s")
                try:
                    popen.wait(15)
                except subprocess.TimeoutExpired:
                    progress(f"  replay: {time.monotonic() - started:.0f} s")
        finally:
            if popen.poll() is None:
                popen.kill()
                popen.wait()
    wall = time.monotonic() - started
    stderr = log.read_text(errors="replace")
    if popen.returncode != 0:
        raise BenchError(f"likeguard replay exited with {popen.returncode}:\n{stderr[-3000:]}")
    events, seconds = parse_summary(stderr)
    with alerts.open("rb") as handle:
        n_alerts = sum(1 for _ in handle)
    return ReplayResult(events, seconds, rate(events, seconds), wall, n_alerts)


@dataclass
class DecodeResult:
    events: int
    #: gzip + ``json.loads`` per line, nothing else.
    json_events_per_second: float
    #: ``stream.capture.read_capture``: the same plus validation into typed records.
    validated_events_per_second: float


def measure_decode(capture: Path) -> DecodeResult:
    """The floor under any replay: read the capture and decode every line.

    Plain decoding is timed twice and the faster kept (a first pass also warms the page
    cache); validation once, as it takes several times longer.
    """
    json_best = float("inf")
    events = 0
    for _ in range(2):
        started = time.perf_counter()
        with gzip.open(capture, "rb") as handle:
            events = sum(1 for line in handle if json.loads(line) is not None)
        json_best = min(json_best, time.perf_counter() - started)
    started = time.perf_counter()
    placed = sum(1 for item in read_capture(capture) if isinstance(item, Placed))
    validated = time.perf_counter() - started
    if placed != events:
        raise BenchError(f"capture has {events - placed} invalid lines")
    return DecodeResult(events, rate(events, json_best), rate(events, validated))
