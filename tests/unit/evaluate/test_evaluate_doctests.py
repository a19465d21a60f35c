"""Run the docstring examples of the evaluation modules."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from stream.evaluate import metrics, report


@pytest.mark.parametrize("module", [metrics, report], ids=lambda m: m.__name__)
def test_doctests(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
