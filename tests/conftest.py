"""Shared fixtures: one real control plane per test session, started only if a test asks for it.

The integration, chart and e2e tiers all use the same control plane (etcd, kube-apiserver,
kube-scheduler, kube-controller-manager, kwok with GKE-shaped TPU node pools; start-up costs seconds and
the machine is small); unit tests never request it, so they run without the Go-built tools.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datajax_devtools.localcluster import LocalCluster

REPO = Path(__file__).resolve().parent.parent
CRD_PATHS = [REPO / "crds", REPO / "tests" / "crds"]


_STARTED: list[LocalCluster] = []
"""The session's control plane once a test has asked for it (so module clean-up never starts one)."""
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


@pytest.fixture(scope="session")
def local_cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """A running control plane with RBAC on, our CRD and the LeaderWorkerSet CRD installed, the
    scheduler, the controllers and kwok's TPU nodes running (pods become Ready 1 s after they run)."""
    cluster = LocalCluster(crd_paths=[p for p in CRD_PATHS if p.exists()])
    cluster.start()
    reporter: Any = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"control plane {cluster.server}: {cluster.startup_summary()}")
    _STARTED.append(cluster)
    try:
        yield cluster
    finally:
        _STARTED.clear()
        cluster.stop()


def _namespaces(cluster: LocalCluster) -> set[str]:
    from kubernetes import client, config

    with config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
        return {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}


@pytest.fixture(scope="module", autouse=True)
def _free_the_nodes_after_each_module() -> Iterator[None]:
    """The kwok TPU pools are as small as a real project's: every module's namespaces (models, their
    pods) are deleted when the module ends, and the next module starts once the namespace controller
    has finished them, so no tier's leftovers keep another tier's pods Pending."""
    before = _namespaces(_STARTED[0]) if _STARTED else set()
    yield
    if not _STARTED:
        return
    cluster = _STARTED[0]
    from kubernetes import client, config

    with config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
        core = client.CoreV1Api(api)
        leftover = _namespaces(cluster) - before - SYSTEM_NAMESPACES
        for name in leftover:
            try:
                core.delete_namespace(name)
            except client.ApiException as err:
                if err.status not in (404, 409):  # gone, or already being deleted
                    raise
        deadline = time.monotonic() + 180
        while leftover & _namespaces(cluster) and time.monotonic() < deadline:
            time.sleep(0.5)  # polling for the namespace controller to finish, not waiting for absence


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
