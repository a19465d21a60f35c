"""The runnable examples in the core's docstrings are tests too."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "schemas.validate",
    "detectors.alerts",
    "detectors.base",
    "detectors.config",
    "detectors.models",
    "detectors.swarm_stage",
    "stream.config",
    "stream.detection_process",
    "stream.swarm_stage",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
