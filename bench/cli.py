"""``python -m bench``: throughput, latency and memory of likeguard on the dev stack.

    python -m bench [--quick] [--events N] [--out bench-results.json]

Runs every measurement on its own topics, consumer group and Redis namespace (all named
``bench-<hex>-…`` and removed at the end), prints progress to standard error, then the
machine and a table of figures with their targets to standard output, and writes every number
to the JSON file. See BENCHMARKS.md for what each figure means and what bounds it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import redis

from bench import latency, live, machine, memory, replay
from bench.profiling import summarise_py_spy
from bench.report import Row, Target, format_machine, format_number, format_table
from bench.stack import BARE_MODULE, WORKER_MODULE, BenchError, BenchStack
from bench.stats import ratio
from stream.config import Settings

T = TypeVar("T")

#: Targets of issue 5.
LIVE_RATIO_TARGET = Target(0.8, at_least=True)
REPLAY_TARGET = Target(50_000, at_least=True)
LATENCY_P99_TARGET = Target(1.0, at_least=False)
#: DESIGN.md's cost budget: Faust ~80 µs per event, detectors together ~20 µs.
DETECTION_BUDGET_US = 20.0


@dataclass(frozen=True)
class Plan:
    """How big each measurement is."""

    seed: int
    hours: float
    #: Events of the capture published for the live runs (None: all of it).
    live_events: int | None
    #: A live run stops this long after its first batch, finished or not.
    live_time_cap: float
    latency_seconds: float
    workers_scaled: int = 2


def plan_for(args: argparse.Namespace) -> Plan:
    if args.quick:
        return Plan(args.seed, args.hours or 1.0, args.events or 10_000, 15.0, 8.0)
    return Plan(args.seed, args.hours or 24.0, args.events, 45.0, 30.0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help="a small run (a smoke test)")
    parser.add_argument(
        "--events",
        type=int,
        help="events published for the live runs (default: the whole scenario; --quick 10000)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench-results.json"), help="JSON results file"
    )
    parser.add_argument("--seed", type=int, default=7, help="scenario seed (default 7)")
    parser.add_argument(
        "--hours",
        type=float,
        help="scenario length; replay and memory use all of it (default 24, --quick 1)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder (worker logs, alerts)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the bare agent and the single worker during their live runs (raw "
        "stacks saved beside --out, summary printed; the sampler costs them some CPU)",
    )
    return parser


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Steps:
    """Runs measurements one after another; a failed one is reported, the others still run."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}
        self.conditions: dict[str, dict[str, Any]] = {}

    def run(self, name: str, action: Callable[[], T], client: redis.Redis) -> T | None:
        progress(f"{name} ...")
        before = _conditions(client)
        started = time.monotonic()
        try:
            return action()
        except (BenchError, redis.RedisError, OSError, subprocess.SubprocessError) as err:
            self.errors[name] = str(err)
            progress(f"{name} FAILED: {err}")
            return None
        finally:
            after = _conditions(client)
            self.conditions[name] = {
                "seconds": round(time.monotonic() - started, 1),
                "load_average_before": before["load"],
                "load_average_after": after["load"],
                # All clients' Redis CPU, ours and anyone else's on the shared server.
                "redis_cpu_seconds": round(after["redis_cpu"] - before["redis_cpu"], 2),
            }


def _conditions(client: redis.Redis) -> dict[str, Any]:
    try:
        info = client.info("cpu")
        cpu = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    except (redis.RedisError, KeyError, ValueError):
        cpu = 0.0
    return {"load": machine.load_average(), "redis_cpu": cpu}


def scenario(plan: Plan, cache: Path) -> Path:
    """``likeguard simulate`` once per (seed, hours, simulator source); cached in .run/bench."""
    digest = hashlib.sha256()
    for source in sorted((machine.REPO_ROOT / "stream" / "simulate").glob("*.py")):
        digest.update(source.read_bytes())
    folder = cache / f"seed{plan.seed}-h{plan.hours:g}-{digest.hexdigest()[:10]}"
    capture = folder / "capture.jsonl.gz"
    if capture.is_file():
        progress(f"scenario: cached {capture}")
        return capture
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "simulate",
            "--out",
            str(tmp),
            "--seed",
            str(plan.seed),
            "--hours",
            str(plan.hours),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=machine.REPO_ROOT,
    )
    if done.returncode != 0:
        raise BenchError(f"likeguard simulate failed:\n{done.stderr[-3000:]}")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return capture


def check_stack(settings: Settings) -> None:
    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError as err:
        raise SystemExit(
            f"bench: Redis at {settings.redis_url} does not answer ({err}); make up"
        ) from None
    host, _, port = settings.bootstrap_servers.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as err:
        raise SystemExit(
            f"bench: broker at {host}:{port} does not answer ({err}); make up"
        ) from None


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    check_stack(settings)
    plan = plan_for(args)
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    facts = machine.describe(settings.redis_url, int(settings.bootstrap_servers.rsplit(":", 1)[1]))
    code = machine.code_version()
    progress(f"commit {code['commit'][:12]}, {len(code['uncommitted_paths'])} uncommitted paths")
    work = Path(tempfile.mkdtemp(prefix="likeguard-bench-"))
    stack = BenchStack(settings, work, partitions=settings.partitions)
    steps = Steps()
    results: dict[str, Any] = {}
    profiles: dict[str, Path] = {}
    if args.profile:
        stem = args.out.with_suffix("")
        profiles = {k: Path(f"{stem}-pyspy-{k}.txt").resolve() for k in ("bare", "worker")}
    try:
        capture = scenario(plan, machine.REPO_ROOT / ".run" / "bench" / "scenarios")
        live_capture, live_events = replay.head_of(capture, plan.live_events, work / "live.jsonl")
        live_likes = replay.likes_in(live_capture)
        progress(f"scenario {capture} ({plan.hours:g} h); live runs use {live_events:,} events")

        source = stack.names("src")
        published = steps.run(
            "publish",
            lambda: _publish(stack, source, live_capture, live_events),
            client,
        )
        results["publish"] = published
        bare = worker1 = worker2 = None
        if published is not None:
            bare = steps.run(
                "live: bare Faust agent",
                lambda: live.measure(
                    stack,
                    stack.names("bare", source.likes_topic),
                    BARE_MODULE,
                    1,
                    live_events,
                    plan.live_time_cap,
                    progress,
                    profile_to=profiles.get("bare"),
                ),
                client,
            )
            worker1 = steps.run(
                "live: likeguard worker x1",
                lambda: live.measure(
                    stack,
                    stack.names("w1", source.likes_topic),
                    WORKER_MODULE,
                    1,
                    live_events,
                    plan.live_time_cap,
                    progress,
                    profile_to=profiles.get("worker"),
                    expected_stage_likes=live_likes,
                ),
                client,
            )
            worker2 = steps.run(
                f"live: likeguard worker x{plan.workers_scaled}",
                lambda: live.measure(
                    stack,
                    stack.names(f"w{plan.workers_scaled}", source.likes_topic),
                    WORKER_MODULE,
                    plan.workers_scaled,
                    live_events,
                    plan.live_time_cap,
                    progress,
                    expected_stage_likes=live_likes,
                ),
                client,
            )
        results.update(bare=bare, worker1=worker1, worker2=worker2)

        kept = stack.names("replay")
        results["replay"] = steps.run(
            "replay (whole scenario, state kept for the memory figure)",
            lambda: replay.measure_replay(stack, kept, capture, progress),
            client,
        )
        results["decode"] = steps.run("decode only", lambda: replay.measure_decode(capture), client)
        if results["replay"] is not None:
            results["memory"] = steps.run(
                "memory",
                lambda: memory.measure_memory(client, kept.namespace, memory.active_ids(capture)),
                client,
            )
        stack.delete_namespace(kept.namespace)

        max_rate = worker1.events_per_second if worker1 is not None else None
        if max_rate:
            results["latency"] = steps.run(
                "latency: worker at half its maximum rate",
                lambda: latency.measure_latency(
                    stack,
                    stack.names("lat"),
                    capture,
                    max_rate / 2,
                    plan.latency_seconds,
                    progress,
                ),
                client,
            )
            results["latency_wall"] = steps.run(
                "latency (stress): the same, event times rewritten to the send time",
                lambda: latency.measure_latency(
                    stack,
                    stack.names("latwall"),
                    capture,
                    max_rate / 2,
                    plan.latency_seconds,
                    progress,
                    times="wall",
                ),
                client,
            )
            results["latency_floor"] = steps.run(
                "latency: bare Faust agent at the same rate",
                lambda: latency.measure_latency(
                    stack,
                    stack.names("latbare"),
                    capture,
                    max_rate / 2,
                    plan.latency_seconds,
                    progress,
                    module=BARE_MODULE,
                ),
                client,
            )
    except KeyboardInterrupt:
        progress("interrupted; cleaning up")
        raise
    finally:
        problems = stack.cleanup()
        for problem in problems:
            progress(f"clean-up: {problem}")
        if args.keep:
            progress(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    facts["load_average_at_end"] = machine.load_average()
    rows = table_rows(results, plan)
    print(format_machine({**facts, "commit": code["commit"][:12]}))
    print()
    print(format_table(rows))
    summaries = {k: summarise_py_spy(p) for k, p in profiles.items() if p.is_file()}
    for label, summary in summaries.items():
        print(f"\npy-spy, {label} ({profiles[label]}):\n{summary}")
    document = {
        "machine": facts,
        "code": code,
        "plan": asdict(plan),
        "settings": {
            "broker": settings.broker,
            "redis_url": settings.redis_url,
            "partitions": settings.partitions,
            "batch_size": settings.batch_size,
            "batch_timeout_seconds": settings.batch_timeout_seconds,
            "session_timeout_seconds": settings.session_timeout_seconds,
        },
        "rows": [r.as_dict() for r in rows],
        "results": {k: _plain(v) for k, v in results.items()},
        "conditions": steps.conditions,
        "errors": steps.errors,
        "profiles": summaries,
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    progress(f"wrote {args.out}")
    return 1 if steps.errors else 0


def _publish(stack: BenchStack, names: Any, capture: Path, events: int) -> dict[str, Any]:
    started = time.monotonic()
    done = stack.likeguard(
        names, "replay", str(capture), "--no-progress", "--to-kafka", names.likes_topic,
        timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"likeguard replay --to-kafka failed:\n{done.stderr[-3000:]}")
    seconds = time.monotonic() - started
    if f"published {events:,} events" not in done.stderr:
        raise BenchError(f"expected {events:,} events published:\n{done.stderr[-2000:]}")
    return {"events": events, "seconds": seconds, "events_per_second": events / seconds}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, dict):
        return value
    return asdict(value)


def table_rows(results: dict[str, Any], plan: Plan) -> list[Row]:
    bare: live.LiveResult | None = results.get("bare")
    one: live.LiveResult | None = results.get("worker1")
    two: live.LiveResult | None = results.get("worker2")
    rep: replay.ReplayResult | None = results.get("replay")
    dec: replay.DecodeResult | None = results.get("decode")
    mem: memory.MemoryResult | None = results.get("memory")
    lat: latency.LatencyResult | None = results.get("latency")
    floor: latency.LatencyResult | None = results.get("latency_floor")
    wall: latency.LatencyResult | None = results.get("latency_wall")

    def eps(r: live.LiveResult | None) -> float | None:
        return r.events_per_second if r is not None else None

    def partial(r: live.LiveResult | None) -> str:
        if r is None:
            return ""
        done = "all" if r.completed else f"first {r.processed_events:,}"
        return f"{done} of {r.expected_events:,} events, {r.measured_seconds:.1f} s"

    cost = None
    if bare is not None and one is not None and bare.events_per_second and one.events_per_second:
        cost = 1e6 / one.events_per_second - 1e6 / bare.events_per_second
    rss = one.rss_bytes[0] if one is not None and one.rss_bytes else None
    return [
        Row("live: bare Faust agent", eps(bare), "events/s", note=partial(bare)),
        Row("live: likeguard worker", eps(one), "events/s", note=partial(one)),
        Row(
            "live: worker / bare",
            ratio(eps(one), eps(bare)),
            "",
            LIVE_RATIO_TARGET,
            "all detectors, default config",
        ),
        Row(
            "live: detection cost per event",
            cost,
            "µs",
            note=f"worker minus bare; budget ~{DETECTION_BUDGET_US:g} µs",
        ),
        Row(
            "replay: likeguard replay",
            rep.events_per_second if rep else None,
            "events/s",
            REPLAY_TARGET,
            f"{rep.events:,} events ({plan.hours:g} h), one process" if rep else "",
        ),
        Row(
            "replay: gzip + json.loads only",
            dec.json_events_per_second if dec else None,
            "events/s",
        ),
        Row(
            "replay: read_capture (decode + validate)",
            dec.validated_events_per_second if dec else None,
            "events/s",
        ),
        Row(
            "replay / decode only",
            ratio(
                rep.events_per_second if rep else None,
                dec.json_events_per_second if dec else None,
            ),
        ),
        Row(
            "latency: event to alert p50",
            lat.p50_seconds if lat else None,
            "s",
            note=f"{lat.alerts} alerts at {lat.per_second_sent:,.0f} events/s, "
            "events at their own times; from the trigger's send"
            if lat
            else "",
        ),
        Row(
            "latency: event to alert p99",
            lat.p99_seconds if lat else None,
            "s",
            LATENCY_P99_TARGET,
            f"received by a consumer: p99 {lat.receive_p99_seconds:.3f} s"
            if lat and lat.receive_p99_seconds is not None
            else "",
        ),
        Row(
            "latency: p99 of the slowest detector",
            max((p99 for _, _, p99 in lat.by_detector.values()), default=None) if lat else None,
            "s",
            note="p50 / p99 (alerts): "
            + ", ".join(
                f"{name} {p50:.2f} / {p99:.2f} s ({count})"
                for name, (count, p50, p99) in lat.by_detector.items()
            )
            if lat
            else "",
        ),
        Row(
            "latency (stress): event to alert p50",
            wall.p50_seconds if wall else None,
            "s",
            note=f"{wall.alerts} alerts; {wall.event_span_seconds / 3600:.1f} h of events "
            f"squeezed into {wall.events / wall.per_second_sent:.0f} s"
            if wall and wall.per_second_sent
            else "",
        ),
        Row(
            "latency (stress): event to alert p99",
            wall.p99_seconds if wall else None,
            "s",
            note=f"received by a consumer: p99 {wall.receive_p99_seconds:.3f} s"
            if wall and wall.receive_p99_seconds is not None
            else "",
        ),
        Row(
            "latency (stress): batch lag p50 / p99, worker",
            wall.batch_lag_p50_seconds if wall else None,
            "s",
            note=f"p99 {format_number(wall.batch_lag_p99_seconds)} s over {wall.batches} batches"
            if wall
            else "",
        ),
        Row(
            "latency: batch lag p50 / p99, bare agent",
            floor.batch_lag_p50_seconds if floor else None,
            "s",
            note=f"p99 {format_number(floor.batch_lag_p99_seconds)} s over {floor.batches} "
            "batches: Faust + broker floor"
            if floor
            else "",
        ),
        Row(
            "memory: Redis bytes per active account",
            mem.bytes_per_account if mem else None,
            "B",
            note=f"{mem.active_accounts:,} accounts, after {plan.hours:g} h" if mem else "",
        ),
        Row(
            "memory: Redis bytes per active post",
            mem.bytes_per_post if mem else None,
            "B",
            note=f"{mem.active_posts:,} posts; {mem.bytes / 2**20:,.1f} MiB in all" if mem else "",
        ),
        Row(
            "memory: worker RSS after live run",
            rss / 2**20 if rss is not None else None,
            "MiB",
        ),
        Row(f"scaling: {plan.workers_scaled} workers", eps(two), "events/s", note=partial(two)),
        Row(f"scaling: {plan.workers_scaled} workers / 1", ratio(eps(two), eps(one))),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    started = time.monotonic()
    try:
        return run(args)
    except BenchError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 2
    finally:
        progress(f"done in {time.monotonic() - started:.0f} s")
