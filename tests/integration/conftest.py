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
from cluster_state import ClusterState
from kubehelpers import Operators, RunningOperator

from datajax_devtools.localcluster import LocalCluster


@pytest.fixture(scope="session")
def operators(kubeconfig: Path, local_cluster: LocalCluster) -> Iterator[Operators]:
    pool = Operators.shared(kubeconfig)
    pool.base = {"sidecar_dial": local_cluster.dial_map()}
    yield pool
    pool.stop()


@pytest.fixture
def operator(operators: Operators) -> RunningOperator:
    """The running operator (started if none runs)."""
    return operators.ensure()


@pytest.fixture
def namespace(admin_client: Any) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (the namespace controller and the garbage
    collector finish it), so its pods free their TPU nodes for the next test."""
    from kubernetes import client

    core = client.CoreV1Api(admin_client)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def state(admin_client: Any) -> ClusterState:
    """Raw reads and writes as cluster admin (resourceVersions, Events, dry-run requests)."""
    return ClusterState(admin_client)


@pytest.fixture
def solo(operators: Operators) -> Iterator[None]:
    """No in-process operator while a test runs its own `datajax-operator run` processes (the next
    test that asks for ``operator`` starts it again)."""
    operators.stop()
    yield
