"""What the figures were measured on: machine, software versions, and the code's commit."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

REPO_ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_total() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15-minute load averages (other work on the machine skews every figure)."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def redis_version(url: str) -> str:
    try:
        info = redis.Redis.from_url(url, socket_connect_timeout=2).info("server")
    except redis.RedisError as err:
        return f"unknown ({err})"
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info.get('redis_version', 'unknown')}"


def _listener_pid(port: int) -> int | None:
    """Pid of the process listening on local TCP ``port`` (via /proc; None if not visible)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                listening = len(parts) > 9 and parts[3] == "0A"
                if listening and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{parts[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return None


def broker_version(port: int) -> str:
    """The broker binary's own ``--version`` (Tansu answers ``tansu 0.6.0``), when local."""
    pid = _listener_pid(port)
    if pid is None:
        return "unknown (listener not visible)"
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        done = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError) as err:
        return f"unknown ({err})"
    return (done.stdout.strip() or done.stderr.strip() or Path(exe).name).splitlines()[0]


def git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def code_version() -> dict[str, Any]:
    """The commit measured, and the files that differed from it (others work in this tree)."""
    dirty = [line[3:] for line in git("status", "--porcelain").splitlines() if line]
    return {
        "commit": git("rev-parse", "HEAD"),
        "commit_subject": git("log", "-1", "--format=%s"),
        "commit_date": git("log", "-1", "--format=%cI"),
        "uncommitted_paths": dirty,
    }


def describe(redis_url: str, broker_port: int) -> dict[str, Any]:
    """Every fact the report prints above its table."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "memory": memory_total(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis": redis_version(redis_url),
        "broker": broker_version(broker_port),
        "load_average_at_start": load_average(),
    }
