"""Fixtures for the deploy/ checks: the external tools and PyYAML (see support.py)."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.deploy.support import missing, require_tool


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return require_tool("amtool")


@pytest.fixture(scope="session")
def yaml() -> ModuleType:
    try:
        import yaml as module
    except ImportError:
        missing("PyYAML", "pip install pyyaml")
        raise  # unreachable: missing() skips or fails
    return module
