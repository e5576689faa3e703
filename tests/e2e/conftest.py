"""E2E fixtures: the session's control plane, the shared in-process operator with a 1 s observe
interval, and served models whose pods' containers run on loopback (see harness.py)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

E2E = Path(__file__).resolve().parent
sys.path[:0] = [str(E2E), str(E2E.parent), str(E2E.parent / "integration")]

from harness import Served, dial  # noqa: E402
from kubehelpers import Operators, RunningOperator  # noqa: E402
from kubernetes import client  # noqa: E402

from datajax_devtools.localcluster import LocalCluster  # noqa: E402


@pytest.fixture(scope="session")
def e2e_config(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The e2e operator config: sidecars scrape vLLM every second and the operator reads them back
    every second. The session's operator is stopped at the end."""
    config = tmp_path_factory.mktemp("operator") / "config.yaml"
    config.write_text(yaml.safe_dump({"sidecarInterval": "1s", "observeInterval": "1s"}))
    yield config
    Operators.shared(kubeconfig).stop()


@pytest.fixture
def e2e_operator(kubeconfig: Path, e2e_config: Path, local_cluster: LocalCluster) -> RunningOperator:
    """The session's one operator with e2e options, (re)started when a test before stopped it to run
    operator processes of its own."""
    return Operators.shared(kubeconfig).ensure(config_path=e2e_config, sidecar_dial=dial(local_cluster))


@pytest.fixture
def namespace(admin_client: Any) -> Iterator[str]:
    """A namespace per test, deleted afterwards: its pods free their TPU nodes for the next test."""
    core = client.CoreV1Api(admin_client)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def serve(
    admin_client: Any,
    local_cluster: LocalCluster,
    namespace: str,
    e2e_operator: RunningOperator,
    tmp_path: Path,
) -> Iterator[Callable[..., Served]]:
    """serve(name, spec) -> a Served model in the test's namespace; everything stopped afterwards."""
    served: list[Served] = []

    def make(name: str, spec: dict[str, Any]) -> Served:
        model = Served(admin_client, local_cluster, namespace, name, spec, tmp_path)
        served.append(model)
        return model

    yield make
    for model in served:
        model.close()
