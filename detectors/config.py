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
    mirror_keys: int = 200_000


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
    min_likes: tuple[int, ...] = (40, 60, 150, 600)
    quantile: float = 0.99
    quantile_factor: float = 3.0
    learn_fraction: float = 1.0
    learn_window_seconds: int = 3600
    history_tau_seconds: float = 604800.0
    history_prior_seconds: float = 3600.0
    history_gap_seconds: int = 600
    history_factor: float = 5.0
    quiet_relief: tuple[float, ...] = (1.0, 0.5, 0.4, 0.4)
    history_ttl_seconds: int = 2592000
    quick_dwell_ms: int = 2000
    quick_tau_seconds: float = 3600.0
    quick_share: float = 0.85
    quick_relief: tuple[float, ...] = (1.0, 1.0, 0.3, 1.0)

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1:
            raise ConfigError("burst.quantile must be between 0 and 1")
        if not all(0 < r <= 1 for r in self.quiet_relief):
            raise ConfigError("burst.quiet_relief values must be in (0, 1]")
        if not all(0 < r <= 1 for r in self.quick_relief):
            raise ConfigError("burst.quick_relief values must be in (0, 1]")
        if not 0 < self.quick_share <= 1:
            raise ConfigError("burst.quick_share must be in (0, 1]")
        if self.quick_tau_seconds <= 0 or self.quick_dwell_ms <= 0:
            raise ConfigError("burst.quick_tau_seconds and quick_dwell_ms must be > 0")
        if self.history_tau_seconds <= 0 or self.history_prior_seconds <= 0:
            raise ConfigError("burst.history_tau_seconds and history_prior_seconds must be > 0")


@dataclass(frozen=True, slots=True)
class NewAccountSpikeConfig:
    enabled: bool = True
    max_age_seconds: float = 259200.0
    min_likes: tuple[int, ...] = (40, 25, 40, 120)
    quantile: float = 0.99
    quantile_factor: float = 1.5
    learn_fraction: float = 0.25
    learn_window_seconds: int = 3600
    min_new_likers: int = 5
    min_new_share: float = 0.6
    author_min_new_share: float = 0.5
    report_every_seconds: float = 600.0
    max_accounts: int = 1000
    state_ttl_seconds: int = 172800

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1:
            raise ConfigError("new_account_spike.quantile must be between 0 and 1")
        if not 0 < self.min_new_share <= 1 or not 0 <= self.author_min_new_share <= 1:
            raise ConfigError(
                "new_account_spike.min_new_share must be in (0, 1], author_min_new_share in [0, 1]"
            )
        if self.min_new_likers < 1:
            raise ConfigError("new_account_spike.min_new_likers must be at least 1")
        if self.report_every_seconds <= 0 or self.max_age_seconds <= 0:
            raise ConfigError(
                "new_account_spike.report_every_seconds and max_age_seconds must be > 0"
            )


@dataclass(frozen=True, slots=True)
class FanImbalanceConfig:
    enabled: bool = True
    tier_bounds: tuple[int, ...] = (1000, 5000, 20000, 100000)
    min_samples: int = 500
    min_post_likes: int = 50
    min_audience_ratio: float = 0.15
    audience_quantile: float = 0.99
    audience_factor: float = 3.0
    learn_min_likes: int = 3
    learn_fraction: float = 0.5
    min_views: int = 100
    min_snapshot_likes: int = 20
    max_likes_per_view: float = 0.3
    min_completion: float = 0.05
    quick_dwell_ms: int = 2000
    suspect_lookback_seconds: int = 86400
    min_followers: int = 5000
    max_engagement: float = 0.005
    engagement_quantile: float = 0.05
    engagement_factor: float = 0.5
    min_observed_seconds: float = 7200.0
    top_posts_kept: int = 16
    report_every_seconds: float = 600.0
    max_accounts: int = 2000
    state_ttl_seconds: int = 172800

    def __post_init__(self) -> None:
        bounds = self.tier_bounds
        if list(bounds) != sorted(set(bounds)) or not bounds or bounds[0] <= 0:
            raise ConfigError("fan_imbalance.tier_bounds must be positive and increasing")
        for name in ("audience_quantile", "engagement_quantile"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"fan_imbalance.{name} must be between 0 and 1")
        if self.min_post_likes < 1 or self.min_followers < 1 or self.top_posts_kept < 1:
            raise ConfigError(
                "fan_imbalance.min_post_likes, min_followers, top_posts_kept must be >= 1"
            )
        if self.report_every_seconds <= 0 or self.suspect_lookback_seconds <= 0:
            raise ConfigError(
                "fan_imbalance.report_every_seconds and suspect_lookback_seconds must be > 0"
            )


@dataclass(frozen=True, slots=True)
class SwarmConfig:
    enabled: bool = True
    sync_seconds: float = 300.0
    post_horizon_seconds: int = 3600
    post_max_likers: int = 1000
    hot_post_likers: int = 300
    max_colikers: int = 50
    popularity_offset: float = 5.0
    sync_weighting: float = 0.0
    quick_dwell_ms: int = 3000
    quick_boost: float = 3.0
    pair_half_life_seconds: float = 43200.0
    edge_weight: float = 1.5
    edge_cosine: float = 0.2
    activity_window_seconds: int = 86400
    edge_horizon_seconds: int = 86400
    reciprocal_min_likes: int = 3
    fan_horizon_seconds: int = 86400
    lockstep_min_size: int = 15
    lockstep_min_density: float = 0.6
    ring_min_size: int = 6
    ring_min_density: float = 0.6
    ring_min_share: float = 0.25
    ring_max_candidates: int = 60
    join_edges_cap: int = 20
    group_post_members: int = 3
    join_posts: int = 3
    join_post_share: float = 0.2
    group_post_share: float = 0.5
    burst_min_likers: int = 15
    burst_quick_share: float = 0.8
    max_neighbors: int = 200
    max_candidates: int = 200
    max_pairs_per_account: int = 2000
    max_group_size: int = 1000
    max_search_work: int = 20000
    search_work_per_like: float = 40.0
    max_waiting: int = 1000
    realert_growth: float = 0.25
    realert_seconds: float = 1800.0
    state_ttl_seconds: int = 172800

    def __post_init__(self) -> None:
        for name in (
            "lockstep_min_density",
            "ring_min_density",
            "ring_min_share",
            "burst_quick_share",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"swarm.{name} must be between 0 and 1")
        if min(self.lockstep_min_size, self.ring_min_size) < 3:
            raise ConfigError("swarm.lockstep_min_size and ring_min_size must be at least 3")
        if self.popularity_offset <= 1 or self.edge_weight <= 0 or self.sync_seconds <= 0:
            raise ConfigError(
                "swarm.popularity_offset must be > 1, edge_weight and sync_seconds > 0"
            )
        if not 0 <= self.sync_weighting <= 1:
            raise ConfigError("swarm.sync_weighting must be between 0 and 1")
        if self.max_candidates < self.lockstep_min_size or self.max_neighbors < 1:
            raise ConfigError("swarm.max_candidates must be at least lockstep_min_size")


@dataclass(frozen=True, slots=True)
class ChurnConfig:
    enabled: bool = True
    min_cycles: tuple[int, ...] = (8, 12, 20, 40)
    quantile: float = 0.9
    quantile_factor: float = 5.0
    learn_fraction: float = 1.0
    learn_window_seconds: int = 3600
    min_ratio: float = 0.4
    min_distinct_posts: int = 8
    min_repeats: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1:
            raise ConfigError("churn.quantile must be between 0 and 1")
        if any(c < 1 for c in self.min_cycles):
            raise ConfigError("churn.min_cycles values must be at least 1")


@dataclass(frozen=True, slots=True)
class Config:
    """All detection settings; see ``detectors/defaults.toml`` for what each one means."""

    windows: WindowsConfig = field(default_factory=WindowsConfig)
    snapshots: SnapshotsConfig = field(default_factory=SnapshotsConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    burst: BurstConfig = field(default_factory=BurstConfig)
    new_account_spike: NewAccountSpikeConfig = field(default_factory=NewAccountSpikeConfig)
    fan_imbalance: FanImbalanceConfig = field(default_factory=FanImbalanceConfig)
    swarm: SwarmConfig = field(default_factory=SwarmConfig)
    churn: ChurnConfig = field(default_factory=ChurnConfig)

    def __post_init__(self) -> None:
        lengths = self.windows.lengths_seconds
        if list(lengths) != sorted(set(lengths)) or not lengths:
            raise ConfigError("windows.lengths_seconds must be increasing and non-empty")
        if max(lengths) > self.windows.retention_seconds:
            raise ConfigError("windows.retention_seconds must cover the longest window length")
        if len(self.new_account_spike.min_likes) != len(lengths):
            raise ConfigError(
                "new_account_spike.min_likes needs one value per windows.lengths_seconds entry"
            )
        if self.new_account_spike.learn_window_seconds not in lengths:
            raise ConfigError(
                "new_account_spike.learn_window_seconds must be one of windows.lengths_seconds"
            )
        if len(self.burst.min_likes) != len(lengths):
            raise ConfigError("burst.min_likes needs one value per windows.lengths_seconds entry")
        if self.burst.learn_window_seconds not in lengths:
            raise ConfigError("burst.learn_window_seconds must be one of windows.lengths_seconds")
        if self.burst.history_gap_seconds not in lengths:
            raise ConfigError("burst.history_gap_seconds must be one of windows.lengths_seconds")
        if len(self.burst.quiet_relief) != len(lengths):
            raise ConfigError(
                "burst.quiet_relief needs one value per windows.lengths_seconds entry"
            )
        if len(self.burst.quick_relief) != len(lengths):
            raise ConfigError(
                "burst.quick_relief needs one value per windows.lengths_seconds entry"
            )
        if len(self.churn.min_cycles) != len(lengths):
            raise ConfigError("churn.min_cycles needs one value per windows.lengths_seconds entry")
        if self.churn.learn_window_seconds not in lengths:
            raise ConfigError("churn.learn_window_seconds must be one of windows.lengths_seconds")
        if self.swarm.activity_window_seconds > self.windows.retention_seconds:
            raise ConfigError(
                "swarm.activity_window_seconds must be within windows.retention_seconds"
            )


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
