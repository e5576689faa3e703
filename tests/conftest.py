"""Shared fixtures: one real control plane per test session, started only if a test asks for it.

The integration, chart and e2e tiers all use the same control plane (etcd, kube-apiserver,
kube-scheduler, kube-controller-manager, kwok with GKE-shaped TPU node pools; start-up costs seconds and
the machine is small); unit tests never request it, so they run without the Go-built tools.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datajax_devtools.localcluster import LocalCluster

REPO = Path(__file__).resolve().parent.parent
CRD_PATHS = [REPO / "crds", REPO / "tests" / "crds"]


@pytest.fixture(scope="session")
def local_cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """A running control plane with RBAC on, our CRD and the LeaderWorkerSet CRD installed, the
    scheduler, the controllers and kwok's TPU nodes running (pods become Ready 1 s after they run)."""
    cluster = LocalCluster(crd_paths=[p for p in CRD_PATHS if p.exists()])
    cluster.start()
    reporter: Any = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"control plane {cluster.server}: {cluster.startup_summary()}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kubeconfig(local_cluster: LocalCluster) -> Iterator[Path]:
    """The admin kubeconfig, also exported as ``KUBECONFIG`` for the whole session so that kubectl,
    helm and an in-process operator can only ever reach this loopback server."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBECONFIG", str(local_cluster.kubeconfig))
        yield local_cluster.kubeconfig


@pytest.fixture(scope="session")
def admin_client(kubeconfig: Path) -> Iterator[Any]:
    """A ``kubernetes.client.ApiClient`` logged in as cluster admin."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield client
    finally:
        client.close()
