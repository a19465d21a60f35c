"""``make demo``: a worker on the dev stack, simulated traffic with attacks, alerts arriving.

Runs on its own topics, consumer group and Redis namespace (suffixed with a run id), so it can
be run again and again on the same stack without the runs seeing each other's events.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = Path(os.environ.get("LIKEGUARD_RUN_DIR", ROOT / ".run"))
METRICS_PORT = int(os.environ.get("LIKEGUARD_DEMO_METRICS_PORT", "9108"))
BOLD, DIM, RED, RESET = ("\033[1m", "\033[2m", "\033[31m", "\033[0m") if sys.stdout.isatty() \
    else ("", "", "", "")


def say(text: str) -> None:
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


def likeguard(*args: str, env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], env=env, text=True,
                          check=True, **kw)  # type: ignore[call-overload, no-any-return]


def metrics_lines(names: tuple[str, ...]) -> list[str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return []
    return [line for line in text.splitlines()
            if line.startswith(names) and not line.endswith(" 0.0")]


def main() -> int:
    run = uuid.uuid4().hex[:6]
    env = {
        **os.environ,
        "LIKEGUARD_LIKES_TOPIC": f"demo-{run}-likes",
        "LIKEGUARD_ACCOUNTS_TOPIC": f"demo-{run}-accounts",
        "LIKEGUARD_ALERTS_TOPIC": f"demo-{run}-alerts",
        "LIKEGUARD_DEAD_LETTER_TOPIC": f"demo-{run}-likes.rejects",
        "LIKEGUARD_APP_ID": f"demo-{run}",
        "LIKEGUARD_NAMESPACE": f"demo-{run}",
        "LIKEGUARD_METRICS_PORT": str(METRICS_PORT),
    }
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    scenario = RUN_DIR / f"demo-{run}"
    log_path = RUN_DIR / f"demo-{run}-worker.log"

    say("1/5  simulating 2 hours of traffic (real Wikipedia-edit users as organic likers) "
        "with injected attacks")
    likeguard("simulate", "--out", str(scenario), "--seed", "1", "--hours", "2", env=env)

    say(f"2/5  starting a worker (log: {log_path.relative_to(ROOT)}, "
        f"metrics: http://127.0.0.1:{METRICS_PORT}/metrics)")
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker", "--loglevel", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not metrics_lines(("likeguard_",)):
            if worker.poll() is not None or time.monotonic() > deadline:
                print(f"{RED}worker did not start; see {log_path}{RESET}")
                print(log_path.read_text(errors="replace")[-2000:])
                return 1
            time.sleep(0.5)
        print("worker is up; metrics before any traffic:")
        for line in metrics_lines(("likeguard_events_total", "likeguard_alerts_total")) \
                or ["  (all counters at zero)"]:
            print(f"  {line}")

        say("3/5  producing the capture into Kafka (keyed by actor, as fast as possible)")
        likeguard("replay", str(scenario / "capture.jsonl.gz"), "--no-progress",
                  "--to-kafka", env["LIKEGUARD_LIKES_TOPIC"], env=env)

        say("4/5  alerts arriving on the alerts topic")
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            env["LIKEGUARD_ALERTS_TOPIC"], auto_offset_reset="earliest",
            bootstrap_servers=env.get("LIKEGUARD_BROKER", "127.0.0.1:9092").split("://")[-1],
            consumer_timeout_ms=15000,
        )
        truth = json.loads((scenario / "truth.json").read_text())
        kind_of = {a: att["kind"] for att in truth["attacks"] for a in att["accounts"]}
        shown = 0
        for record in consumer:
            alert = json.loads(record.value)
            kinds = sorted({kind_of.get(a, "organic") for a in alert["accounts"]})
            shown += 1
            print(f"  {alert['severity']:>6}  {alert['detector']:<18} {alert['subject_kind']:<7} "
                  f"{alert['subject_id']:<14} score {alert['score']:<7} "
                  f"{len(alert['accounts'])} account(s)  {DIM}truth: {', '.join(kinds)}{RESET}")
            if shown == 1:
                print(f"  {DIM}first alert in full: {json.dumps(alert)[:600]}{RESET}")
        consumer.close()
        if not shown:
            print(f"{RED}no alert arrived; see {log_path}{RESET}")
            return 1

        say("5/5  metrics after the stream")
        for line in metrics_lines(("likeguard_events_total", "likeguard_alerts_total",
                                   "likeguard_event_time_lag_seconds",
                                   "likeguard_processing_latency_seconds_count")):
            print(f"  {line}")
        print(f"\n{shown} alert(s). Scenario and truth: {scenario.relative_to(ROOT)}/. "
              "Stop the stack with `make down`.")
        return 0
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
