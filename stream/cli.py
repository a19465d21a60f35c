"""The ``likeguard`` command.

    likeguard worker                      run the Faust stream processor
    likeguard replay PATH... [--out FILE] [--namespace NAME]
                                          the detection pipeline over capture files
    likeguard replay PATH... --to-kafka TOPIC [--speed N|max]
                                          re-publish a capture to a topic
    likeguard alerts [--follow]           print alerts from the alerts topic
    likeguard topics                      create the topics likeguard uses
    likeguard simulate --out DIR          write a labelled scenario (capture + truth)
    likeguard eval SCENARIO_DIR           score detection against the scenario's truth

Every connection setting defaults to the dev stack (``make up``) and can be set with a
``LIKEGUARD_*`` environment variable or a flag; see ``stream/config.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from stream.config import Settings


def _connection_flags() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connections (default: environment, then the dev stack)")
    group.add_argument("--broker", help="Kafka URL, e.g. kafka://127.0.0.1:9092 [LIKEGUARD_BROKER]")
    group.add_argument("--redis-url", help="Redis URL [LIKEGUARD_REDIS_URL]")
    group.add_argument(
        "--config",
        help="detection settings TOML overriding detectors/defaults.toml [LIKEGUARD_CONFIG]",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _connection_flags()
    parser = argparse.ArgumentParser(
        prog="likeguard",
        description="Streaming fake-engagement detector.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = sub.add_parser("worker", parents=[common], help="run the Faust stream processor")
    worker.add_argument("--namespace", help="Redis key prefix [LIKEGUARD_NAMESPACE]")
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="Prometheus port, 0 to disable [LIKEGUARD_METRICS_PORT, 9108]",
    )
    worker.add_argument(
        "--partitions",
        type=int,
        help="partitions of topics the worker creates [LIKEGUARD_PARTITIONS, 4]",
    )
    worker.add_argument("--loglevel", default="info", help="log level (default: info)")

    replay = sub.add_parser(
        "replay",
        parents=[common],
        help="run the detection pipeline over capture files (or re-publish them to Kafka)",
        description="Replays capture files (JSON Lines, gzip, or kcat -C -J envelopes) in "
        "event-time order through the same pipeline as the live worker. Alerts go to --out "
        "as JSON Lines, a summary to standard error; bad lines go to a rejects file.",
    )
    replay.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    replay.add_argument("--out", help="alerts file (default: standard output)")
    replay.add_argument(
        "--namespace",
        help="Redis key prefix; state is kept after the run for inspection. Default: a "
        "fresh namespace, deleted at the end",
    )
    replay.add_argument(
        "--fresh", action="store_true", help="delete the namespace's keys before replaying"
    )
    replay.add_argument(
        "--rejects",
        type=Path,
        help="rejects file (default: OUT.rejects.jsonl, or "
        "likeguard-replay.rejects.jsonl when writing to standard output)",
    )
    replay.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        help="events per batch (default 1000, the live worker's largest); changes speed, "
        "not the swarm alerts",
    )
    replay.add_argument(
        "--reorder-buffer",
        type=int,
        default=100_000,
        help="events held per file to restore event-time order",
    )
    replay.add_argument("--no-progress", action="store_true", help="no progress display")
    replay.add_argument(
        "--to-kafka", metavar="TOPIC", help="re-publish the capture to TOPIC instead of detecting"
    )
    replay.add_argument(
        "--speed",
        default="max",
        help="with --to-kafka: 1 = original pacing, N = N times faster, "
        "max = as fast as possible (default)",
    )

    alerts = sub.add_parser("alerts", parents=[common], help="print alerts from Kafka")
    alerts.add_argument("--topic", help="alerts topic [LIKEGUARD_ALERTS_TOPIC]")
    alerts.add_argument("--follow", action="store_true", help="keep waiting for new alerts")
    alerts.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="without --follow: stop after this many idle seconds",
    )
    alerts.add_argument("--max", type=int, default=0, help="stop after N alerts")

    topics = sub.add_parser("topics", parents=[common], help="create likeguard's topics")
    topics.add_argument("--partitions", type=int, help="partitions [LIKEGUARD_PARTITIONS, 4]")

    from stream.evaluate.cli import configure_parser as configure_eval
    from stream.simulate.cli import configure_parser as configure_simulate

    configure_simulate(
        sub.add_parser(
            "simulate",
            help="write a labelled scenario (capture + truth)",
            description="Organic traffic from real interaction data with labelled attacks.",
        )
    )
    configure_eval(
        sub.add_parser(
            "eval",
            parents=[common],
            help="score detection on a labelled scenario against reference methods",
            description="Replays a scenario through the pipeline and reports precision, "
            "recall, F1, detection delay and organic false positives, beside FRAUDAR and a "
            "fixed per-window threshold.",
        )
    )
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        broker=getattr(args, "broker", None),
        redis_url=getattr(args, "redis_url", None),
        config=getattr(args, "config", None),
        namespace=getattr(args, "namespace", None),
        metrics_port=getattr(args, "metrics_port", None),
        partitions=getattr(args, "partitions", None),
    )


def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from stream.app import create_app
    from stream.metrics import Metrics, serve
    from stream.topics import ensure_topics

    settings = settings_from(args)
    ensure_topics(settings)
    metrics = Metrics()
    if settings.metrics_port:
        serve(settings.metrics_port)
        logging.getLogger("likeguard").info("metrics on :%d/metrics", settings.metrics_port)
    app = create_app(settings, metrics)
    worker = faust.Worker(app, loglevel=args.loglevel)
    worker.execute_from_commandline()  # returns only through SystemExit
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from stream.replay import (
        KafkaSink,
        Progress,
        RejectsFile,
        default_rejects_path,
        print_summary,
        publish,
        replay,
    )

    missing = [str(p) for p in args.paths if not p.is_file()]
    if missing:
        raise SystemExit(f"likeguard replay: no such file: {', '.join(missing)}")
    rejects = RejectsFile(args.rejects or default_rejects_path(args.out))
    progress = Progress(sys.stderr, enabled=False if args.no_progress else None)
    settings = settings_from(args)

    if args.to_kafka:
        from stream.topics import ensure_topics

        speed = None if args.speed == "max" else float(args.speed)
        if speed is not None and speed <= 0:
            raise SystemExit("likeguard replay: --speed must be positive or 'max'")
        ensure_topics(settings, extra=(args.to_kafka,))
        sink = KafkaSink(settings.bootstrap_servers, args.to_kafka)
        try:
            summary = publish(args.paths, sink, speed, rejects, args.reorder_buffer, progress)
        finally:
            sink.close()
        print_summary(summary)
        print(f"  published {sink.sent:,} events to {args.to_kafka}", file=sys.stderr)
        return 0

    from detectors.config import load_config
    from detectors.pipeline import Pipeline
    from detectors.state import RedisState

    namespace = args.namespace or f"likeguard-replay-{uuid.uuid4().hex[:12]}"
    state = RedisState.from_url(settings.redis_url, namespace)
    if args.fresh:
        state.delete_namespace()
    pipeline = Pipeline(state, load_config(settings.config or None))
    out = open(args.out, "w", encoding="utf-8") if args.out and args.out != "-" else sys.stdout  # noqa: SIM115
    try:
        summary = replay(
            args.paths, pipeline, out, rejects, args.batch_size, args.reorder_buffer, progress
        )
    finally:
        if out is not sys.stdout:
            out.close()
        if not args.namespace:
            state.delete_namespace()
    print_summary(summary)
    if args.namespace:
        print(f"  state kept in Redis under {namespace}:*", file=sys.stderr)
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from kafka import KafkaConsumer

    settings = settings_from(args)
    topic = args.topic or settings.alerts_topic
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=-1 if args.follow else int(args.timeout * 1000),
    )
    shown = 0
    try:
        for record in consumer:
            alert = json.loads(record.value)
            print(json.dumps(alert, sort_keys=True), flush=True)
            shown += 1
            if args.max and shown >= args.max:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from stream.topics import ensure_topics

    settings = settings_from(args)
    created = ensure_topics(settings)
    print(f"created: {', '.join(created)}" if created else "all topics exist")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from stream.simulate.cli import run

    return run(args)


def cmd_eval(args: argparse.Namespace) -> int:
    from stream.evaluate.cli import run

    return run(args)


COMMANDS = {
    "worker": cmd_worker,
    "replay": cmd_replay,
    "alerts": cmd_alerts,
    "topics": cmd_topics,
    "simulate": cmd_simulate,
    "eval": cmd_eval,
}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO is per-connection chatter
    args = build_parser().parse_args(argv)
    from detectors.config import ConfigError
    from detectors.state import StateError
    from stream.topics import BrokerError

    try:
        return COMMANDS[args.command](args)
    except (ConfigError, StateError, BrokerError) as err:
        print(f"likeguard {args.command}: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `likeguard replay … | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
