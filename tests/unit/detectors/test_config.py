from __future__ import annotations

from pathlib import Path

import pytest

from detectors.config import ConfigError, load_config


def test_defaults_load_and_are_consistent() -> None:
    cfg = load_config()
    assert cfg.windows.lengths_seconds == tuple(sorted(cfg.windows.lengths_seconds))
    assert len(cfg.burst.min_likes) == len(cfg.windows.lengths_seconds)


def test_override_file_changes_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "cfg.toml"
    path.write_text("[alerts]\ncooldown_seconds = 60\n")
    cfg = load_config(path)
    assert cfg.alerts.cooldown_seconds == 60
    assert cfg.alerts.high_score == load_config().alerts.high_score


def test_environment_variable_names_the_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cfg.toml"
    path.write_text("[burst]\nquantile = 0.9\n")
    monkeypatch.setenv("LIKEGUARD_CONFIG", str(path))
    assert load_config().burst.quantile == 0.9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[alerts]\ncooldown_secs = 1\n", "unknown setting alerts.cooldown_secs"),
        ("[nope]\nx = 1\n", "unknown setting nope"),
        ("alerts = 3\n", "alerts must be a table"),
        ("[burst]\nmin_likes = [1, 2]\n", "one value per windows.lengths_seconds"),
        ("[burst]\nquantile = 1.5\n", "between 0 and 1"),
        ("[windows]\nlengths_seconds = [600, 60]\n", "increasing"),
        ("[alerts\n", "not valid TOML"),
    ],
)
def test_bad_overrides_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(path)


def test_missing_override_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.toml")
