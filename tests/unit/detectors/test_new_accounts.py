"""new_account_spike: the pure parts (verdicts, thresholds, ages, settings, checkpoints)."""

from __future__ import annotations

import dataclasses
import doctest
from pathlib import Path
from types import ModuleType

import pytest

from detectors import accounts, new_accounts
from detectors.accounts import account_age, parse_float
from detectors.config import ConfigError, NewAccountSpikeConfig, WindowsConfig, load_config
from detectors.models import PopulationQuantiles
from detectors.new_accounts import NewAccountSpikeDetector, actor_thresholds, judge_target


def test_target_mostly_new_likers_is_flagged_with_score_above_one() -> None:
    verdict = judge_target(new_likers=12, likers=14, min_new=5, min_share=0.6)
    assert verdict.flagged
    assert verdict.score > 1.0
    assert verdict.share == pytest.approx(12 / 14)


def test_target_exactly_at_both_bars_scores_one() -> None:
    verdict = judge_target(new_likers=6, likers=10, min_new=6, min_share=0.6)
    assert verdict.flagged
    assert verdict.score == pytest.approx(1.0)


def test_popular_post_with_some_new_likers_is_not_flagged() -> None:
    # A popular post gets new accounts among its likers too; they are a small share.
    verdict = judge_target(new_likers=15, likers=200, min_new=5, min_share=0.6)
    assert not verdict.flagged
    assert verdict.score < 1.0


def test_few_new_likers_are_not_enough_even_when_they_are_all_the_likers() -> None:
    verdict = judge_target(new_likers=4, likers=4, min_new=5, min_share=0.6)
    assert not verdict.flagged


def test_total_likers_never_below_new_likers() -> None:
    # The counts come from two keys; a lagging total must not give a share above 1.
    verdict = judge_target(new_likers=8, likers=3, min_new=5, min_share=0.6)
    assert verdict.likers == 8
    assert verdict.share == 1.0


def test_actor_thresholds_take_the_larger_of_floor_and_population() -> None:
    assert actor_thresholds((40, 25, 40), (2.0, 30.0, 10.0), factor=1.5) == [40.0, 45.0, 40.0]


@pytest.mark.parametrize(
    ("ts", "created", "age"),
    [(1000.0, 400.0, 600.0), (1000.0, 1000.0, 0.0), (1000.0, 1500.0, 0.0), (1000.0, None, None)],
)
def test_account_age(ts: float, created: float | None, age: float | None) -> None:
    assert account_age(ts, created) == age


def test_account_age_ignores_nan() -> None:
    assert account_age(10.0, float("nan")) is None


@pytest.mark.parametrize(
    ("raw", "value"), [(b"12.5", 12.5), ("3", 3.0), (b"", None), ("", None), (None, None)]
)
def test_parse_float(raw: bytes | str | None, value: float | None) -> None:
    assert parse_float(raw) == value


def test_defaults_have_one_floor_per_window_length() -> None:
    cfg = load_config()
    assert len(cfg.new_account_spike.min_likes) == len(cfg.windows.lengths_seconds)
    assert cfg.new_account_spike.learn_window_seconds in cfg.windows.lengths_seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[new_account_spike]\nmin_likes = [1, 2]\n", "one value per windows.lengths_seconds"),
        ("[new_account_spike]\nquantile = 1.0\n", "between 0 and 1"),
        ("[new_account_spike]\nmin_new_share = 0\n", "min_new_share"),
        ("[new_account_spike]\nmin_new_likers = 0\n", "min_new_likers"),
        ("[new_account_spike]\nauthor_min_new_share = 1.5\n", "author_min_new_share"),
        ("[new_account_spike]\nlearn_window_seconds = 7\n", "learn_window_seconds"),
        ("[new_account_spike]\nreport_every_seconds = 0\n", "report_every_seconds"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_detector_refuses_floors_that_do_not_match_the_windows() -> None:
    config = NewAccountSpikeConfig(min_likes=(1, 2))
    with pytest.raises(ValueError, match="min_likes"):
        NewAccountSpikeDetector(config, WindowsConfig())


def test_checkpoint_round_trip_keeps_the_learned_quantiles() -> None:
    windows = WindowsConfig()
    first = NewAccountSpikeDetector(NewAccountSpikeConfig(), windows)
    for count in range(1, 200):
        first.model.learn_one([count] * len(windows.lengths_seconds))
    second = NewAccountSpikeDetector(NewAccountSpikeConfig(), windows)
    second.load_model_state(first.model_state())
    assert second.model.quantiles() == first.model.quantiles()
    assert second.model.quantiles()[0] > 100


def test_checkpoint_of_another_shape_is_ignored() -> None:
    detector = NewAccountSpikeDetector(NewAccountSpikeConfig(), WindowsConfig())
    foreign = PopulationQuantiles(n_resolutions=2, q=0.99)
    foreign.learn_one([5, 5])
    detector.load_model_state(foreign)
    detector.load_model_state("not a model")
    assert detector.model is not foreign
    assert detector.model.n_seen == 0


def test_disabled_detector_is_not_registered() -> None:
    from detectors.pipeline import default_detectors

    cfg = load_config()
    names = [d.name for d in default_detectors(cfg)]
    assert "new_account_spike" in names
    off = dataclasses.replace(
        cfg, new_account_spike=dataclasses.replace(cfg.new_account_spike, enabled=False)
    )
    assert "new_account_spike" not in [d.name for d in default_detectors(off)]


@pytest.mark.parametrize("module", [accounts, new_accounts], ids=lambda m: m.__name__)
def test_doctests(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
