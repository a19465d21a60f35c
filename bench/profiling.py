"""Where replay time goes: ``likeguard replay``'s own loop under cProfile, grouped by layer.

    python -m bench.profiling CAPTURE [--events N] [--redis-url URL] [--top 25] [--out FILE]

Runs the capture (or its first N events) through :func:`stream.replay.replay` twice on fresh
namespaces (deleted afterwards): once plain, for the rate, and once under cProfile. Prints

* every Redis operation's client-observed time (one Lua script or pipeline per batch each,
  through the :class:`~detectors.state.RedisState` observer): the round trip, i.e. the
  server's work, the wait behind other clients, and redis-py packing the arguments;
* the cumulative time of the pipeline's stages (windows, each detector, alert gate, …);
* self time grouped by layer (decode and validation, redis-py and socket waits, River,
  detectors, …), which partitions the profiled total;
* the top functions by self time.

cProfile slows pure-Python code down (roughly 1.5-2×) and leaves time spent waiting for
Redis alone, so its shares overstate Python work; the plain run's rate is the one to quote.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.replay import head_of
from detectors.config import load_config
from detectors.pipeline import Pipeline
from detectors.state import RedisState
from stream.config import Settings
from stream.replay import RejectsFile, replay

#: (layer, substrings of "file:function"): first match wins; order matters.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Redis: waiting for replies (socket)", ("recv_into", "sendall", "_socket.socket")),
    ("Redis: redis-py encode/parse", ("/redis/",)),
    ("decode + validate (json, schemas, capture)", ("/json/", "_json", "schemas/", "capture.py")),
    ("reading the file (gzip)", ("gzip", "zlib", "_compression")),
    ("River models", ("/river/",)),
    ("detectors (Python)", ("/detectors/",)),
    ("replay driver", ("stream/replay.py", "heapq")),
    ("alerts JSON", ("json.encoder", "encoder.py")),
)


def layer_of(filename: str, function: str) -> str:
    """The layer a profiled function belongs to (see :data:`LAYERS`).

    >>> layer_of("~", "<method 'recv_into' of '_socket.socket' objects>")
    'Redis: waiting for replies (socket)'
    >>> layer_of("/x/site-packages/river/stats/quantile.py", "update")
    'River models'
    >>> layer_of("/x/heap.py", "f")
    'other'
    """
    where = f"{filename}:{function}"
    for layer, needles in LAYERS:
        if any(needle in where for needle in needles):
            return layer
    return "other"


#: Stages reported by cumulative time: (label, file suffix, function name).
STAGES: tuple[tuple[str, str, str], ...] = (
    ("Pipeline.process (everything per batch)", "detectors/pipeline.py", "process"),
    ("  snapshots (Lua)", "detectors/pipeline.py", "_store_snapshots"),
    ("  windows (Lua + unpacking)", "detectors/windows.py", "update"),
    ("  alert gate (Lua)", "detectors/alerts.py", "admit"),
    ("  model checkpoints", "detectors/pipeline.py", "checkpoint"),
    ("reading + decoding the capture", "stream/capture.py", "read_capture"),
)


def _pipeline(redis_url: str, namespace: str, timings: dict[str, list[float]]) -> Pipeline:
    def observe(operation: str, seconds: float, failed: bool) -> None:
        timings[operation].append(seconds)

    state = RedisState.from_url(redis_url, namespace, observe)
    return Pipeline(state, load_config(None))


def _run(capture: Path, redis_url: str, profiler: cProfile.Profile | None) -> dict[str, Any]:
    namespace = f"bench-profile-{uuid.uuid4().hex[:10]}"
    timings: dict[str, list[float]] = defaultdict(list)
    pipeline = _pipeline(redis_url, namespace, timings)
    rejects = RejectsFile(Path(f"/tmp/{namespace}.rejects.jsonl"))
    try:
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        summary = replay([capture], pipeline, io.StringIO(), rejects)
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - started
        redis_calls = {op: (len(t), sum(t)) for op, t in timings.items()}  # before clean-up
    finally:
        pipeline.state.delete_namespace()
    return {
        "events": summary.events,
        "seconds": seconds,
        "detectors": [d.name for d in pipeline.detectors],
        "redis": redis_calls,
    }


def _detector_stages(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Cumulative time of every ``detect`` method under ``detectors/``, by module."""
    out = []
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        if function == "detect" and "/detectors/" in filename:
            out.append((f"  {Path(filename).stem}.detect", row[3]))
    return sorted(out, key=lambda item: -item[1])


def report(plain: dict[str, Any], profiled: dict[str, Any], stats: pstats.Stats, top: int) -> str:
    lines: list[str] = []
    events = plain["events"]
    lines.append(
        f"plain run: {events:,} events in {plain['seconds']:.2f} s = "
        f"{events / plain['seconds']:,.0f} events/s ({1e6 * plain['seconds'] / events:.1f} µs "
        f"per event); detectors: {', '.join(plain['detectors'])}"
    )
    lines.append("")
    lines.append("Redis operations (plain run; client-observed round trip per call):")
    total_redis = sum(t for _, t in plain["redis"].values())
    for op, (calls, seconds) in sorted(plain["redis"].items(), key=lambda kv: -kv[1][1]):
        lines.append(
            f"  {op:<22} {calls:>6} calls  {seconds:8.2f} s  {1e3 * seconds / calls:7.2f} ms/call"
            f"  {1e6 * seconds / events:7.1f} µs/event  {100 * seconds / plain['seconds']:5.1f} %"
        )
    lines.append(
        f"  {'all Redis':<22} {'':>12}  {total_redis:8.2f} s  {'':>15}"
        f"{1e6 * total_redis / events:7.1f} µs/event  {100 * total_redis / plain['seconds']:5.1f} %"
    )
    total = profiled["seconds"]
    lines.append("")
    lines.append(f"profiled run: {total:.2f} s under cProfile. Stages (cumulative):")
    for label, suffix, function in STAGES:
        cumulative: float = sum(
            row[3]
            for (filename, _, name), row in stats.stats.items()  # type: ignore[attr-defined]
            if name == function and filename.endswith(suffix)
        )
        lines.append(f"  {label:<44} {cumulative:8.2f} s  {100 * cumulative / total:5.1f} %")
    for label, cumulative in _detector_stages(stats):
        lines.append(f"  {label:<44} {cumulative:8.2f} s  {100 * cumulative / total:5.1f} %")
    layers: dict[str, float] = defaultdict(float)
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        layers[layer_of(filename, function)] += row[2]
    lines.append("")
    lines.append("Self time by layer (partitions the profiled run):")
    for layer, seconds in sorted(layers.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {layer:<44} {seconds:8.2f} s  {100 * seconds / total:5.1f} %")
    lines.append("")
    lines.append(f"Top {top} functions by self time:")
    buffer = io.StringIO()
    stats.stream = buffer  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    body = buffer.getvalue()
    lines.append(body[body.find("   ncalls") :].rstrip())
    return "\n".join(lines)


#: Leaf frames where a thread sleeps rather than works (event-loop select, idle pool thread).
_IDLE_LEAVES = (
    "selectors.py",
    "threading.py",
    "concurrent/futures/thread.py",
    "queue.py",
    "(socket.py",
    "(socketserver.py",
)


def stack_category(frames: Sequence[str]) -> str:
    """What one py-spy sample was doing, from its frames (outermost first, thread excluded).

    >>> stack_category(["run (threading.py:1)", "select (selectors.py:468)"])
    'idle (select / empty queue / socket)'
    >>> stack_category(["detect (detectors/burst.py:9)", "evalsha (redis/commands/core.py:1)",
    ...                 "_read (redis/_parsers/socket.py:64)"])
    'Redis: waiting for replies'
    >>> stack_category(["process (detectors/pipeline.py:1)", "detect (detectors/burst.py:9)"])
    'detectors: burst.py'
    """
    if not frames:
        return "other"
    leaf = frames[-1]
    text = ";".join(frames)
    if "redis/" in text:
        if "_parsers/socket.py" in leaf or "(socket.py" in leaf or "send_packed_command" in leaf:
            return "Redis: waiting for replies"
        return "Redis: redis-py packing + parsing"
    if any(idle in leaf for idle in _IDLE_LEAVES):
        return "idle (select / empty queue / socket)"
    modules = [f.split("(detectors/", 1)[1].split(":", 1)[0] for f in frames if "(detectors/" in f]
    if modules:
        return f"detectors: {modules[-1]}"
    if "schemas/" in text or "json/" in text:
        return "decode + validate"
    if "prometheus_client" in text:
        return "metrics"
    if any(lib in text for lib in ("faust/", "mode/", "aiokafka/", "asyncio/", "kafka/")):
        return "Faust + aiokafka + asyncio"
    return "other"


def thread_group(label: str) -> str:
    """py-spy's thread frame (``thread (123): asyncio_0``) to a role in the worker.

    >>> thread_group("thread (123): asyncio_0"), thread_group("thread (9)")
    ('pipeline (asyncio.to_thread pool)', 'other threads')
    """
    name = label.split(": ", 1)[-1] if ": " in label else ""
    if name.startswith("asyncio_"):
        return "pipeline (asyncio.to_thread pool)"
    if name == "MainThread":
        return "main: Faust event loop"
    if "serve_forever" in name or "process_request_thread" in name:
        return "Prometheus HTTP server (answering scrapes)"
    if name.startswith("Thread-"):
        return "Faust consumer thread (aiokafka fetching)"
    return "other threads"


def summarise_py_spy(path: Path) -> str:
    """Shares of wall time of a ``py-spy record --threads --idle --format raw`` profile.

    Every thread is sampled at the same rate, so the busiest single thread's sample count
    stands for the wall time; each role's activities are shown as a share of it (the pool
    threads take turns, so their busy shares add up).
    """
    by_thread: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_thread: dict[str, int] = defaultdict(int)
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        group = thread_group(frames[0]) if frames[0].startswith("thread") else "other threads"
        by_thread[group][stack_category(frames[1:])] += int(count)
        per_thread[frames[0]] += int(count)
    wall = max(per_thread.values(), default=0)
    if not wall:
        return "no samples"
    lines = [f"{wall:,} samples per thread = the wall time; shares are of the wall time"]
    busy_of = {
        group: sum(n for c, n in categories.items() if not c.startswith("idle"))
        for group, categories in by_thread.items()
    }
    for group, categories in sorted(by_thread.items(), key=lambda kv: -busy_of[kv[0]]):
        lines.append(f"{group}: busy {100 * busy_of[group] / wall:.1f} %")
        for category, n in sorted(categories.items(), key=lambda kv: -kv[1]):
            if not category.startswith("idle") and 100 * n / wall >= 0.1:
                lines.append(f"  {category:<40} {100 * n / wall:5.1f} %")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profiling", description=__doc__)
    parser.add_argument("capture", type=Path, nargs="?")
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="RAW",
        help="instead: summarise a `py-spy record --threads --idle --format raw` file",
    )
    parser.add_argument("--events", type=int, help="only the first N events")
    parser.add_argument("--redis-url", default=Settings.from_env().redis_url)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, help="save the cProfile stats (for snakeviz etc.)")
    args = parser.parse_args(argv)
    if args.py_spy:
        print(summarise_py_spy(args.py_spy))
        return 0
    if args.capture is None:
        parser.error("a capture file is needed (or --py-spy RAW)")
    capture = args.capture
    if args.events:
        capture, _ = head_of(capture, args.events, Path(f"/tmp/bench-profile-{uuid.uuid4().hex}"))
    try:
        plain = _run(capture, args.redis_url, None)
        profiler = cProfile.Profile()
        profiled = _run(capture, args.redis_url, profiler)
    finally:
        if capture != args.capture:
            capture.unlink(missing_ok=True)
    stats = pstats.Stats(profiler)
    if args.out:
        stats.dump_stats(args.out)
    print(report(plain, profiled, stats, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
