"""Detection settings, loaded from ``defaults.toml`` and optional overrides.

>>> cfg = load_config()
>>> cfg.windows.lengths_seconds[0], cfg.alerts.cooldown_seconds
(60, 3600)
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar


@dataclass(frozen=True, slots=True)
class WindowsConfig:
    lengths_seconds: tuple[int, ...] = (60, 600, 3600, 86400)
    retention_seconds: int = 86400
    max_members: int = 2000
    key_ttl_seconds: int = 172800


@dataclass(frozen=True, slots=True)
class SnapshotsConfig:
    key_ttl_seconds: int = 2592000


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    medium_score: float = 2.0
    high_score: float = 4.0
    cooldown_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class ModelsConfig:
    checkpoint_every_events: int = 20000


@dataclass(frozen=True, slots=True)
class BurstConfig:
    enabled: bool = True
    min_likes: tuple[int, ...] = (20, 60, 150, 600)
    quantile: float = 0.99
    quantile_factor: float = 3.0
    learn_fraction: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1:
            raise ConfigError("burst.quantile must be between 0 and 1")


@dataclass(frozen=True, slots=True)
class Config:
    """All detection settings; see ``detectors/defaults.toml`` for what each one means."""

    windows: WindowsConfig = field(default_factory=WindowsConfig)
    snapshots: SnapshotsConfig = field(default_factory=SnapshotsConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    burst: BurstConfig = field(default_factory=BurstConfig)

    def __post_init__(self) -> None:
        lengths = self.windows.lengths_seconds
        if list(lengths) != sorted(set(lengths)) or not lengths:
            raise ConfigError("windows.lengths_seconds must be increasing and non-empty")
        if max(lengths) > self.windows.retention_seconds:
            raise ConfigError("windows.retention_seconds must cover the longest window length")
        if len(self.burst.min_likes) != len(lengths):
            raise ConfigError("burst.min_likes needs one value per windows.lengths_seconds entry")


class ConfigError(ValueError):
    """A configuration file or value that cannot be used."""


def load_config(path: str | Path | None = None) -> Config:
    """Packaged ``defaults.toml``, overridden by ``path`` or else ``$LIKEGUARD_CONFIG``."""
    text = resources.files("detectors").joinpath("defaults.toml").read_text("utf-8")
    merged = tomllib.loads(text)
    path = path or os.environ.get("LIKEGUARD_CONFIG") or None
    if path:
        try:
            override = tomllib.loads(Path(path).read_text("utf-8"))
        except OSError as err:
            raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config {path} is not valid TOML: {err}") from None
        merged = _merge(merged, override, where="")
    return _build(Config, merged, where="")


def _merge(base: dict[str, Any], override: dict[str, Any], where: str) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if key not in base:
            raise ConfigError(f"unknown setting {where}{key}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{key} must be a table")
            out[key] = _merge(base[key], value, where=f"{where}{key}.")
        else:
            out[key] = value
    return out


T = TypeVar("T")


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    kwargs: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"unknown setting {where}{key}")
        default = fields[key].default_factory
        if isinstance(default, type) and dataclasses.is_dataclass(default):
            kwargs[key] = _build(default, value, where=f"{where}{key}.")
        elif isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"bad settings in {where or 'top level'}: {err}") from None
