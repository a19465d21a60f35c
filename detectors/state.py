"""The Redis connection every detector shares: namespace, Lua scripts, timing hook.

All keys live under one namespace (``likeguard`` for the live worker, a fresh one per replay),
so two runs never share state. The key layout is documented in ``docs/redis-keys.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

import msgspec
import redis

#: JSON for a script argument (a list of entries): msgspec's encoder, ~15x json.dumps on the
#: batch-sized lists the scripts take. Floats keep their shortest exact form, as with repr.
script_json = msgspec.json.Encoder().encode

#: Called after every Redis call with (operation, seconds, failed).
RedisObserver = Callable[[str, float, bool], None]


class StateError(RuntimeError):
    """Redis could not be reached or refused a command; the message says which and where."""


class RedisState:
    """A namespaced handle on Redis with the likeguard Lua scripts registered.

    Parameters
    ----------
    client
        A ``redis.Redis`` client (``decode_responses=False``).
    namespace
        Prefix of every key this handle touches.
    observer
        Optional hook timing each call (the worker feeds Prometheus from it).
    """

    def __init__(
        self,
        client: redis.Redis,
        namespace: str = "likeguard",
        observer: RedisObserver | None = None,
    ) -> None:
        if not namespace or any(c in namespace for c in " \n\r\t"):
            raise ValueError(f"namespace must be a non-empty word, got {namespace!r}")
        self.client = client
        self.namespace = namespace
        self.observer = observer
        self._scripts = {
            name: client.register_script(_read_script(name))
            for name in ("windows", "snapshots", "cooldown")
        }

    @classmethod
    def from_url(
        cls, url: str, namespace: str = "likeguard", observer: RedisObserver | None = None
    ) -> RedisState:
        """Connect to ``url`` and check that Redis answers, with a clear error if not."""
        client = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
        try:
            client.ping()
        except redis.RedisError as err:
            raise StateError(f"cannot reach Redis at {_redact(url)}: {err}") from None
        return cls(client, namespace, observer)

    def key(self, *parts: str) -> str:
        """``namespace:part:part…``."""
        return ":".join((self.namespace, *parts))

    def run_script(self, name: str, args: Sequence[Any]) -> Any:
        """Run one of the packaged Lua scripts with ``args`` as ARGV; returns its reply."""
        with self.timed(name):
            return self._scripts[name](keys=[], args=list(args))

    @contextmanager
    def timed(self, operation: str) -> Iterator[None]:
        """Time a Redis call for the observer and turn Redis errors into :class:`StateError`."""
        start = time.perf_counter()
        failed = False
        try:
            yield
        except redis.RedisError as err:
            failed = True
            raise StateError(f"Redis {operation} failed: {err}") from err
        finally:
            if self.observer is not None:
                self.observer(operation, time.perf_counter() - start, failed)

    def delete_namespace(self, batch: int = 1000) -> int:
        """Delete every key under this namespace (used by replay to clean up); returns count."""
        deleted = 0
        with self.timed("delete_namespace"):
            keys: list[bytes] = []
            for key in self.client.scan_iter(match=f"{self.namespace}:*", count=batch):
                keys.append(key)
                if len(keys) >= batch:
                    deleted += int(self.client.unlink(*keys))
                    keys.clear()
            if keys:
                deleted += int(self.client.unlink(*keys))
        return deleted


def _read_script(name: str) -> str:
    return resources.files("detectors").joinpath(f"{name}.lua").read_text("utf-8")


def _redact(url: str) -> str:
    """Hide a password in a Redis URL before it goes into an error message."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
