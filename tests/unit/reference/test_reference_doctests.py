"""Run the docstring examples of the reference methods."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import detectors.reference as reference
from detectors.reference import _common, fraudar, threshold


@pytest.mark.parametrize(
    "module", [reference, _common, fraudar, threshold], ids=lambda m: m.__name__
)
def test_doctests(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
