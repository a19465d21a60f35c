"""Shared fixtures for the ``likeguard simulate`` tests: small scenarios, generated once."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from stream.simulate.checks import LoadedScenario, load_scenario
from stream.simulate.cli import main
from stream.simulate.sources import WIKIPEDIA_FILE, default_data_dir


def simulate(out: Path, *args: str) -> LoadedScenario:
    """Run ``likeguard simulate --out OUT ARGS...`` and load what it wrote."""
    assert main(["--out", str(out), *args]) == 0
    return load_scenario(out)


Simulate = Callable[..., LoadedScenario]

# Override to soak the checks over other seeds: LIKEGUARD_SIMULATE_TEST_SEED=3 pytest ...
SEED = os.environ.get("LIKEGUARD_SIMULATE_TEST_SEED", "11")


@pytest.fixture(scope="session")
def seed() -> str:
    """The seed of the shared scenarios (``LIKEGUARD_SIMULATE_TEST_SEED``, default 11)."""
    return SEED


@pytest.fixture
def run_simulate(tmp_path: Path) -> Simulate:
    """Run the generator into a fresh folder under ``tmp_path``."""
    counter = iter(range(1000))

    def _run(*args: str) -> LoadedScenario:
        return simulate(tmp_path / f"run-{next(counter)}", *args)

    return _run


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> LoadedScenario:
    """90 minutes of synthetic organic traffic with every attack kind."""
    out = tmp_path_factory.mktemp("synthetic")
    return simulate(out, "--organic", "synthetic", "--seed", SEED, "--hours", "1.5")


@pytest.fixture(scope="session")
def wikipedia_run(tmp_path_factory: pytest.TempPathFactory) -> LoadedScenario:
    """One hour on the Wikipedia edits (skipped when the data file is not there)."""
    if not (default_data_dir() / WIKIPEDIA_FILE).is_file():
        pytest.skip(f"{WIKIPEDIA_FILE} not found in {default_data_dir()}")
    out = tmp_path_factory.mktemp("wikipedia")
    return simulate(out, "--organic", "wikipedia", "--seed", SEED, "--hours", "1")
