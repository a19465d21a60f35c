"""Same seed and arguments give the same bytes; another seed gives another scenario."""

from __future__ import annotations

from collections.abc import Callable

from stream.simulate.checks import LoadedScenario

Simulate = Callable[..., LoadedScenario]
SMALL = ("--organic", "synthetic", "--hours", "0.5")


def test_same_seed_gives_identical_bytes(run_simulate: Simulate) -> None:
    first = run_simulate(*SMALL, "--seed", "4")
    second = run_simulate(*SMALL, "--seed", "4")
    assert first.capture_bytes == second.capture_bytes
    assert first.truth_bytes == second.truth_bytes


def test_different_seed_gives_a_different_scenario(run_simulate: Simulate) -> None:
    first = run_simulate(*SMALL, "--seed", "4")
    second = run_simulate(*SMALL, "--seed", "5")
    assert first.capture_bytes != second.capture_bytes
    first_accounts = {a for attack in first.truth["attacks"] for a in attack["accounts"]}
    second_accounts = {a for attack in second.truth["attacks"] for a in attack["accounts"]}
    assert first_accounts != second_accounts


def test_start_shifts_every_time_by_the_same_amount(run_simulate: Simulate) -> None:
    base = run_simulate(*SMALL, "--seed", "4", "--start", "2026-11-01T00:00:00Z")
    later = run_simulate(*SMALL, "--seed", "4", "--start", str(1793491200 + 86_400))
    assert later.truth["start"] - base.truth["start"] == 86_400
    assert len(later.events) == len(base.events)
    shifted = [round(event["ts"] - 86_400, 3) for event in later.events]
    assert shifted == [event["ts"] for event in base.events]
