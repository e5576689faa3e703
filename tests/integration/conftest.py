"""Integration fixtures: namespaces on the session's real API server, and the operator run in-process.

The operator runs the same code path as `datajax-operator run` (runner.run) in a thread, against the
session kubeconfig, with liveness and metrics on free loopback ports. One operator runs at a time
(they would all watch every namespace); a test that restarts it stops the previous one first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubehelpers import Operators, RunningOperator


@pytest.fixture(scope="session")
def operators(kubeconfig: Path) -> Iterator[Operators]:
    pool = Operators.shared(kubeconfig)
    yield pool
    pool.stop()


@pytest.fixture
def operator(operators: Operators) -> RunningOperator:
    """The running operator (started if none runs)."""
    return operators.ensure()


@pytest.fixture
def namespace(admin_client: Any) -> str:
    """A fresh namespace per test (never deleted: no controller here would ever finish the deletion)."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(admin_client).create_namespace({"metadata": {"name": name}})
    return name
