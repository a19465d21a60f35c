"""Labelled scenario generator: organic traffic from real interaction data plus injected
fake-engagement attacks, written as a capture file and a ground-truth file.

See :mod:`stream.simulate.scenario` for the output and :mod:`stream.simulate.attacks` for
what each attack looks like.
"""

from stream.simulate.attacks import ATTACK_KINDS
from stream.simulate.scenario import Scenario, ScenarioConfig, generate, summary, write

__all__ = ["ATTACK_KINDS", "Scenario", "ScenarioConfig", "generate", "summary", "write"]
