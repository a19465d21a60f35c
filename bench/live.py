"""Live throughput: consumers of a pre-filled topic, timed from first to last processed batch.

Tansu answers a consumer group's first join only after half the session timeout, so the clock
starts at the first processed batch, not at process start. The poller scrapes each process's
``/metrics`` (``likeguard_events_total`` and ``likeguard_last_processed_timestamp_seconds``);
both the worker and the bare agent export them. The times come from the gauge (the end of a
batch), not from the poll, so polling often buys no precision; it costs the worker CPU (a
scrape renders every metric, ~6 ms), hence twice a second.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stack import (
    WORKER_MODULE,
    BenchError,
    BenchStack,
    Names,
    Process,
    free_port,
    scrape,
    stop_all,
    worker_figures,
)
from bench.stats import Sample, throughput_span

Progress = Callable[[str], None]

POLL_SECONDS = 0.5


@dataclass
class PySpy:
    """A ``py-spy record`` of one process, written as collapsed stacks when it is stopped."""

    popen: subprocess.Popen[bytes]
    out: Path

    @classmethod
    def start(cls, pid: int, out: Path, seconds: float, progress: Progress) -> PySpy | None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(exe).is_file():
            progress("  py-spy not found (pip install py-spy): no profile")
            return None
        command = [exe, "record", "--nonblocking", "--threads", "--idle", "--format", "raw"]
        command += ["--rate", "100", "--duration", str(int(seconds) + 30)]
        command += ["--pid", str(pid), "--output", str(out)]
        return cls(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), out
        )

    def finish(self) -> None:
        """Stop sampling; py-spy writes its file on SIGINT."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


@dataclass
class LiveResult:
    """One live measurement."""

    label: str
    processes: int
    expected_events: int
    processed_events: int
    measured_events: float
    measured_seconds: float
    events_per_second: float
    completed: bool
    #: Process start to the first processed batch: group join (half the session timeout on
    #: Tansu) plus imports and connections. Not part of the throughput.
    startup_seconds: float
    rss_bytes: list[int | None] = field(default_factory=list)
    per_process_events: list[float] = field(default_factory=list)
    #: Per process, the worker's batch and Redis timings (see ``stack.worker_figures``).
    worker_figures: list[dict[str, Any]] = field(default_factory=list)


def measure(
    stack: BenchStack,
    names: Names,
    module: str,
    processes: int,
    expected: int,
    time_cap: float,
    progress: Progress,
    startup_timeout: float = 120.0,
    stall_timeout: float = 60.0,
    profile_to: Path | None = None,
    expected_stage_likes: int = 0,
) -> LiveResult:
    """Start ``processes`` consumers of ``names.likes_topic`` and time them.

    Stops when ``expected`` records are processed and ``expected_stage_likes`` likes have been
    through the workers' swarm stage (which finishes after detection; its batches set the
    last-processed gauge too, so the rate covers them), or ``time_cap`` seconds after the first
    batch (the rate is then over what was processed so far: a steady-state figure). With
    ``profile_to``, py-spy samples the first process from its first batch to the end
    (non-blocking, so the process is not paused, but the sampler takes some CPU).
    """
    args = ("worker", "--loglevel", "warning") if module == WORKER_MODULE else ()
    ports = [free_port() for _ in range(processes)]
    procs: list[Process] = [
        stack.spawn(
            module,
            names,
            stack.work_dir / f"{names.prefix}-{n}.log",
            *args,
            LIKEGUARD_METRICS_PORT=str(port),
        )
        for n, port in enumerate(ports)
    ]
    spawned, spawned_at = time.monotonic(), time.time()
    first: list[Sample] | None = None
    first_seen = 0.0
    last: list[Sample] = []
    last_change = spawned
    last_total = -1.0
    next_report = spawned + 10.0
    completed = False
    sampler: PySpy | None = None
    try:
        while True:
            for proc in procs:
                if not proc.alive():
                    raise BenchError(
                        f"{names.prefix}: process {proc.pid} exited with "
                        f"{proc.popen.returncode}:\n{proc.log_tail()}"
                    )
                if proc.failed():
                    raise BenchError(f"{names.prefix}: error in {proc.log}:\n{proc.log_tail()}")
            last = [scrape(port) or Sample(0.0, 0.0) for port in ports]
            total = sum(s.events for s in last)
            now = time.monotonic()
            if total != last_total:
                last_total, last_change = total, now
            if first is None and total > 0:
                first, first_seen = last, now
                if profile_to is not None:
                    sampler = PySpy.start(procs[0].pid, profile_to, time_cap, progress)
            staged = sum(s.stage_likes for s in last)
            if total >= expected and staged >= expected_stage_likes:
                completed = True
                break
            if first is None and now - spawned > startup_timeout:
                raise BenchError(f"{names.prefix}: nothing processed in {startup_timeout:.0f} s")
            if first is not None and now - first_seen >= time_cap:
                break
            if now - last_change > stall_timeout:
                raise BenchError(
                    f"{names.prefix}: stalled at {total:,.0f}/{expected:,} events for "
                    f"{stall_timeout:.0f} s:\n{procs[0].log_tail()}"
                )
            if now >= next_report:
                next_report = now + 10.0
                progress(f"  {names.prefix}: {total:,.0f}/{expected:,} events")
            time.sleep(POLL_SECONDS)
        rss = [p.rss_bytes() for p in procs]
        figures = [worker_figures(port) for port in ports]
    finally:
        if sampler is not None:
            sampler.finish()
        stop_all([p.popen for p in procs])
    assert first is not None
    span = throughput_span(first, last)
    startup = min(s.last_processed for s in first if s.events > 0) - spawned_at
    return LiveResult(
        label=names.prefix,
        processes=processes,
        expected_events=expected,
        processed_events=int(sum(s.events for s in last)),
        measured_events=span.events,
        measured_seconds=span.seconds,
        events_per_second=span.per_second,
        completed=completed,
        startup_seconds=startup,
        rss_bytes=rss,
        per_process_events=[s.events for s in last],
        worker_figures=figures,
    )
