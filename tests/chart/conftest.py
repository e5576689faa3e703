"""Fixtures of the chart tests: the real helm and promtool binaries (never skipped), a renderer."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.chart.chartlib import Renderer, binary


@pytest.fixture(scope="session")
def helm() -> str:
    return binary("helm")


@pytest.fixture(scope="session")
def promtool() -> str:
    return binary("promtool")


@pytest.fixture(scope="session")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An isolated helm environment: no user config, cache or repositories leak into the tests."""
    home = tmp_path_factory.mktemp("helm-home")
    env = dict(os.environ)
    for var, sub in (
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
    ):
        env[var] = str(home / sub)
    env.pop("KUBECONFIG", None)
    yield env


@pytest.fixture(scope="session")
def renderer(helm: str, helm_home: dict[str, str]) -> Renderer:
    return Renderer(helm, helm_home)
